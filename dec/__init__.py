"""heobs-dec: what runs Caffe — Deep Embedded Clustering (autoencoder,
clustering loop, class folders) and CaffeNet (train, evaluate, classify).
Data comes from `data_prep`."""
