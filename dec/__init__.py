"""heobs-dec: Deep Embedded Clustering and CaffeNet fine-tuning on BVLC Caffe."""
