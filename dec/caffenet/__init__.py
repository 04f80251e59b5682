"""CaffeNet for the photo classes (report §4-§8): the nets (nets), fine-tuning
through the `caffe` tool (train), evaluation and pseudo-labelling (classify)."""
