"""heobs-dec's data preparation: photos, LevelDB of Caffe Datums, the data sets,
DEC's image features and the image side of the supervised half.

It never imports `dec` and never imports pycaffe: it runs before Caffe is
built (Caffe's tools, where a step needs them, are run as programs).
"""
