"""DEC's image features: pyvision's HOG, the colour map, STL-10 and photo folders."""
import numpy as np
import pytest
from PIL import Image

from data_prep import db, feature_data, features, labels

TEXTURE = 0.2357 * 0.2   # each of the 4 block sums when every value is truncated at 0.2


def edge_image(vertical=True, size=32, value=255):
    image = np.zeros((size, size, 3), np.uint8)
    if vertical:
        image[:, size // 2:] = value
    else:
        image[size // 2:, :] = value
    return image


def test_flat_image_has_all_zero_features():
    np.testing.assert_array_equal(features.hog(np.full((40, 48, 3), 77, np.uint8)),
                                  np.zeros((3, 4, 13)))


def test_vertical_edge_by_hand():
    """A 0|255 edge down the middle of 32x32: both edge columns (dx = 255) snap to
    orientation 0 and every cell's four normalised values exceed 0.2, so each
    output cell is 0.5 * 4 * 0.2 = 0.4 at orientation 0 and 0.2357 * 0.2 per block."""
    feat = features.hog(edge_image(vertical=True))
    assert feat.shape == (2, 2, 13)
    np.testing.assert_allclose(feat[..., 0], 0.4, rtol=1e-12)
    np.testing.assert_array_equal(feat[..., 1:9], 0)
    np.testing.assert_allclose(feat[..., 9:], TEXTURE, rtol=1e-12)


def test_horizontal_edge_by_hand():
    """dy = 255: |v_o * dy| is largest for v = 0.9848, at 80 and 100 degrees;
    the first of the two (orientation 4) wins."""
    feat = features.hog(edge_image(vertical=False))
    np.testing.assert_allclose(feat[..., 4], 0.4, rtol=1e-12)
    assert not np.delete(feat[..., :9], 4, axis=2).any()
    np.testing.assert_allclose(feat[..., 9:], TEXTURE, rtol=1e-12)


def test_faint_edge_by_hand_shows_the_normalisation():
    """An edge of height 1e-4 (float image): the block energies are of the order
    of the 1e-4 in the normaliser, nothing reaches 0.2, and cell (0, 0) is
    0.5 * sum_k hist * n_k with hist = 8e-4 (8 pixel rows of full weight) and
    the first cell row getting 6.4375 rows' worth (rows 1-3 and 4-11)."""
    image = edge_image(vertical=True).astype(np.float64) / 255 * 1e-4
    feat = features.hog(image)
    hist, border = 8e-4, 6.4375e-4
    energies = [4 * hist ** 2,                       # n1: cells (1..2, 1..2)
                2 * border ** 2 + 2 * hist ** 2,     # n2: (1..2, 0..1)
                2 * hist ** 2,                       # n3: (0..1, 1..2), column 0 empty
                border ** 2 + hist ** 2]             # n4: (0..1, 0..1)
    h = [hist / np.sqrt(e + 1e-4) for e in energies]
    assert max(h) < 0.2
    np.testing.assert_allclose(feat[0, 0, 0], 0.5 * sum(h), rtol=1e-9)
    np.testing.assert_allclose(feat[0, 0, 9:], 0.2357 * np.array(h), rtol=1e-9)


def test_channel_ties_keep_the_earlier_channel():
    """Ramps: R rises along x, B along y, equally steep — every pixel is a tie
    between R (orientation 0) and B (orientation 4): R wins. A steeper G or B wins."""
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float64)
    image = np.stack([2 * xx, 0 * xx, 2 * yy], axis=-1)
    feat = features.hog(image)
    assert feat[..., 0].min() > 0 and not feat[..., 1:9].any()
    image[..., 1] = 2.01 * yy                     # G steeper than R: G's dy wins
    feat = features.hog(image)
    assert feat[..., 4].min() > 0 and not np.delete(feat[..., :9], 4, axis=2).any()
    image[..., 1] = 2 * yy                        # G ties with R: R (earlier) wins again
    assert not features.hog(image)[..., 1:9].any()


def test_shapes_square_non_square_and_ignored_border():
    rng = np.random.default_rng(0)
    assert features.hog(rng.integers(0, 256, (96, 96, 3))).shape == (10, 10, 13)
    tall = rng.integers(0, 256, (64, 120, 3))              # rows x columns
    assert features.hog(tall).shape == (6, 13, 13)
    padded = np.concatenate([tall, rng.integers(0, 256, (7, 120, 3))])
    padded = np.concatenate([padded, rng.integers(0, 256, (71, 5, 3))], axis=1)
    np.testing.assert_array_equal(features.hog(padded), features.hog(tall))
    with pytest.raises(ValueError, match="too small"):
        features.hog(np.zeros((20, 40, 3)))
    with pytest.raises(ValueError, match="RGB"):
        features.hog(np.zeros((32, 32)))


def test_invariances():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 200, (48, 64, 3))
    feat = features.hog(image)
    # a brightness offset leaves every gradient as it is
    np.testing.assert_allclose(features.hog(image + 40.0), feat, rtol=1e-9, atol=1e-12)
    # a mirror image: orientation o becomes 9 - o (0 stays), cells mirror
    mirrored = features.hog(image[:, ::-1])
    order = [0, 8, 7, 6, 5, 4, 3, 2, 1]
    expected = feat[:, ::-1][..., order]
    np.testing.assert_allclose(mirrored[..., :9], expected, rtol=1e-9, atol=1e-12)
    # the texture sums swap blocks left and right: (1, 2, 3, 4) → (3, 4, 1, 2)
    np.testing.assert_allclose(mirrored[..., 9:], feat[:, ::-1][..., [11, 12, 9, 10]],
                               rtol=1e-9, atol=1e-12)
    # features grow with contrast but saturate: truncation keeps everything <= 0.4 / 0.2357*0.8
    assert feat[..., :9].max() <= 0.4 + 1e-12 and feat[..., 9:].max() <= 0.2357 * 1.8


def test_dec_vector_length_and_scaling():
    grey = np.full((96, 96, 3), 128, np.uint8)
    vector = features.dec_feature(grey)
    assert vector.shape == (1428,) == (features.feature_length((96, 96)),)
    np.testing.assert_allclose(vector[:1300], -2.0)         # (0 - 0.2) * 10
    np.testing.assert_allclose(vector[1300:], 0.0)          # (128 - 128) / 10
    red = np.zeros((96, 96, 3), np.uint8)
    red[..., 0] = 255
    cr, cb = features.colour_map(red, (8, 8))[0, 0].astype(int)
    np.testing.assert_allclose(features.dec_feature(red)[1300:1302],
                               [(cr - 128) / 10, (cb - 128) / 10])
    assert cr > 200                                         # red is high Cr
    photo = features.dec_feature(np.zeros((96, 160, 3), np.uint8), cmap_size=(6, 10))
    assert photo.shape == (10 * 18 * 13 + 6 * 10 * 2,)


def test_dec_features_in_parallel_equal_one_by_one():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (70, 32, 40, 3), dtype=np.uint8)
    together = features.dec_features(images, n_jobs=2, progress=False)
    np.testing.assert_array_equal(together[13], features.dec_feature(images[13]))
    assert together.shape == (70, 2 * 3 * 13 + 128)


def test_hog_picture_draws_the_strong_orientation():
    picture = features.hog_picture(features.hog(edge_image(vertical=True)), 9)
    assert picture.shape == (18, 18) and picture.dtype == np.uint8
    cell = picture[:9, :9]
    assert cell[:, 4].min() == 255 and cell[4, 0] == 0      # a vertical bar


# ---- STL-10 -----------------------------------------------------------------------
def write_stl(folder, name, images, labels=None):
    images.transpose(0, 3, 2, 1).tofile(folder / f"{name}_X.bin")   # column-major, per channel
    if labels is not None:
        (np.asarray(labels, np.uint8) + 1).tofile(folder / f"{name}_y.bin")


def test_stl_reading_and_databases(tmp_path):
    rng = np.random.default_rng(3)
    train = rng.integers(0, 256, (6, 96, 96, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (4, 96, 96, 3), dtype=np.uint8)
    write_stl(tmp_path, "train", train, [0, 1, 2, 3, 4, 9])
    write_stl(tmp_path, "test", test, [5, 6, 7, 8])
    write_stl(tmp_path, "unlabeled", rng.integers(0, 256, (5, 96, 96, 3), dtype=np.uint8))
    np.testing.assert_array_equal(feature_data.read_stl_images(tmp_path / "train_X.bin"), train)
    out = tmp_path / "db"
    feature_data.make_stl_databases(tmp_path, out, progress=False)
    x, y = db.read_db(out / "stl_total")
    images, y_img = db.read_db(out / "stl_img")
    assert x.shape == (10, 1428) and sorted(y) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    np.testing.assert_array_equal(y, y_img)
    everything = np.concatenate([train, test])
    for row in range(10):
        source = everything[np.flatnonzero((everything == images[row].transpose(1, 2, 0))
                                           .all(axis=(1, 2, 3)))[0]]
        np.testing.assert_allclose(x[row], features.dec_feature(source), rtol=1e-6, atol=1e-5)
    assert db.count_db(out / "stl_train") == 12 and db.count_db(out / "stl_test") == 3
    # the visual check: a grid of the images and one of their HOG pictures
    assert Image.open(out / "stl_org.jpg").size == (10 * 97 + 1, 97 + 1)
    assert Image.open(out / "stl_hog.jpg").size == (10 * 91 + 1, 91 + 1)
    with pytest.raises(ValueError, match="whole number"):
        (tmp_path / "bad_X.bin").write_bytes(b"123")
        feature_data.read_stl_images(tmp_path / "bad_X.bin")


# ---- photo folders -------------------------------------------------------------------
def test_photo_folder_with_mixed_sizes_modes_and_a_corrupt_file(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (120, 80), (200, 10, 10)).save(folder / "heritage_1.jpg")
    Image.new("RGBA", (64, 64), (10, 200, 10, 128)).save(folder / "being_2.png")
    Image.new("L", (300, 200), 90).save(folder / "scenery_3.jpg")
    Image.new("CMYK", (50, 70), (0, 80, 200, 0)).save(folder / "other_4.jpg")
    rotated = Image.new("RGB", (60, 30), (0, 0, 255))
    exif = rotated.getexif()
    exif[0x0112] = 6                                          # EXIF: rotate 90 degrees
    rotated.save(folder / "heritage_5.jpg", exif=exif)
    (folder / "heritage_6.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "db"
    logged = []
    result = feature_data.make_photo_databases(folder, out, size=(64, 48), progress=False,
                                               log=logged.append)
    assert result["written"] == 5 and [p.endswith("heritage_6.jpg") for p, _ in
                                       result["skipped"]] == [True]
    assert logged and "heritage_6.jpg" in logged[0]
    names = list(np.load(out / "custom_named_label.npy"))
    x, y = db.read_db(out / "custom_total")
    images, _ = db.read_db(out / "custom_img")
    assert x.shape == (5, features.feature_length((48, 64), cmap_size=(6, 10)))
    assert images.shape == (5, 3, 48, 64)
    assert [labels.PHOTO_CLASSES[label] for label in y] == [n.split("_")[0] for n in names]
    assert db.count_db(out / "custom_train") == 4 and db.count_db(out / "custom_test") == 1


def test_labels_from_names_and_empty_folders(tmp_path):
    assert labels.label_of("scenery_0001.jpg") == 2
    assert labels.label_of("Being_x.png") == 1
    assert labels.label_of("holiday.jpg") is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        feature_data.make_photo_databases(tmp_path / "empty", tmp_path / "db", progress=False)
    with pytest.raises(FileNotFoundError):
        feature_data.make_photo_databases(tmp_path / "missing", tmp_path / "db", progress=False)


def order_sensitive_image(rng, shape):
    """Values over many orders of magnitude: a float sum then depends on the
    order of its terms, so only the same order gives the same bits."""
    return rng.random(shape) * 10.0 ** rng.integers(-6, 6, shape)


def test_hog_equals_the_plain_loop_bit_for_bit():
    from tests.data_prep.hog_loop import hog_loop
    rng = np.random.default_rng(7)
    for shape, sbin in (((40, 56, 3), 8), ((37, 29, 3), 6)):
        image = order_sensitive_image(rng, shape)
        ours, loop = features.hog(image, sbin), hog_loop(image, sbin)
        assert ours.shape == loop.shape
        np.testing.assert_array_equal(ours, loop)          # the same sums, the same order
    photo = rng.integers(0, 256, (48, 40, 3)).astype(np.uint8)
    np.testing.assert_array_equal(features.hog(photo), hog_loop(photo))


def test_colour_map_is_cr_and_cb_of_a_linear_resize_of_rgb():
    """cv2's INTER_LINEAR at a third of the size samples the centre pixel of
    each 3x3 block exactly; Cr/Cb by the BT.601 formulas OpenCV uses."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (30, 24, 3)).astype(np.uint8)     # rows x columns, RGB
    cmap = features.colour_map(image, (8, 10))                    # (width, height)
    assert cmap.shape == (10, 8, 2)
    centre = image[1::3, 1::3].astype(np.float64)
    r, g, b = centre[..., 0], centre[..., 1], centre[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr, cb = (r - y) * 0.713 + 128, (b - y) * 0.564 + 128
    np.testing.assert_allclose(cmap[..., 0], np.clip(cr, 0, 255), atol=1.0)
    np.testing.assert_allclose(cmap[..., 1], np.clip(cb, 0, 255), atol=1.0)
