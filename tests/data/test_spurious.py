import numpy as np
import pytest
import torch

from ssl_suite.data import datasets, spurious
from ssl_suite.data.spurious import GroupCSVDataset, build_arrays, spurious_fashion
from ssl_suite.errors import UserError


def synthetic(n=7000):
    """Fashion-MNIST-shaped arrays, large enough for proportions (balanced over the 10 classes)."""
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n) % 10


@pytest.mark.parametrize("correlation", [0.95, 0.7])
def test_train_agreement_matches_the_correlation(correlation):
    arr = build_arrays(*synthetic(), "train", correlation=correlation)
    agree = arr["a"] == arr["y"]
    assert abs(agree.mean() - correlation) < 0.01
    for c in (0, 1):  # in each class, not only overall
        assert abs(agree[arr["y"] == c].mean() - correlation) < 0.01


@pytest.mark.parametrize("split", ["val", "test"])
def test_val_and_test_groups_are_balanced(split):
    arr = build_arrays(*synthetic(), split)
    counts = np.bincount(2 * arr["y"] + arr["a"], minlength=4)
    assert counts.min() == counts.max() > 0


def test_val_is_held_out_from_train():
    images, labels = synthetic(6000)
    train, val = build_arrays(images, labels, "train"), build_arrays(images, labels, "val")
    assert train["source"].max() < 5000 <= val["source"].min()  # the last sixth (10k of 60k)


def test_labels_map_footwear_to_1_and_upper_body_to_0(fake_fashion_mnist):
    images, labels = datasets.load_fashion_mnist("train", str(fake_fashion_mnist))
    arr = build_arrays(images, labels, "train")
    source_classes = labels[arr["source"]]
    assert set(source_classes[arr["y"] == 1]) == {5, 7, 9}
    assert set(source_classes[arr["y"] == 0]) == {0, 2, 4, 6}  # trousers, dress, bag dropped


def test_dataset_attributes_and_items(fake_fashion_mnist):
    ds = spurious_fashion("train", root=str(fake_fashion_mnist))
    assert ds.classes == ("upper body", "footwear") and ds.attr_names == ("grass", "brick")
    assert ds.labels.dtype == ds.attrs.dtype == torch.long
    assert torch.equal(ds.groups, 2 * ds.labels + ds.attrs)
    image, label = ds[3]
    assert image.mode == "RGB" and image.size == (28, 28) and label == int(ds.labels[3])
    tensor_ds = spurious_fashion(
        "test", transform=lambda im: torch.from_numpy(np.asarray(im).copy()), root=str(fake_fashion_mnist)
    )
    assert tensor_ds[0][0].shape == (28, 28, 3)


def test_alpha_compositing_on_one_pixel(fake_fashion_mnist):
    images, labels = datasets.load_fashion_mnist("test", str(fake_fashion_mnist))
    arr = build_arrays(images, labels, "test")
    ds = spurious_fashion("test", root=str(fake_fashion_mnist))
    i = 0
    x_all = images[arr["source"][i]]
    r, c = map(int, np.argwhere((x_all > 0) & (x_all < 85))[0])  # a partly transparent pixel
    x = float(x_all[r, c])
    alpha = min(3 * x / 255, 1.0)
    oy, ox = arr["offsets"][i]
    bg = spurious.textures()[arr["a"][i]][oy + r, ox + c]
    expected = round(alpha * x + (1 - alpha) * bg)
    assert np.asarray(ds[i][0])[r, c].tolist() == [expected] * 3
    # an opaque garment pixel keeps its value; the textures are 4x4 block means of scikit-image's
    from skimage import data

    assert spurious.composite(np.array([200]), np.array([10.0]))[0] == 200
    assert spurious.textures()[1][5, 7] == pytest.approx(data.brick()[20:24, 28:32].mean())


def test_same_seed_same_set_other_seed_other_set(fake_fashion_mnist):
    images, labels = datasets.load_fashion_mnist("train", str(fake_fashion_mnist))
    a, b = build_arrays(images, labels, "train", seed=3), build_arrays(images, labels, "train", seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = build_arrays(images, labels, "train", seed=4)
    assert not np.array_equal(a["images"], c["images"])


def test_correlation_parameter_is_respected(fake_fashion_mnist):
    for corr in (0.0, 0.5, 1.0):
        ds = spurious_fashion("train", root=str(fake_fashion_mnist), correlation=corr)
        for cls in (0, 1):  # exactly round(corr * n) of each class agree with their background
            in_cls = ds.labels == cls
            assert int((ds.attrs[in_cls] == cls).sum()) == round(corr * int(in_cls.sum()))


def test_bad_split_and_correlation_are_user_errors(fake_fashion_mnist):
    with pytest.raises(UserError, match="split must be one of train, val, test"):
        spurious_fashion("validation", root=str(fake_fashion_mnist))
    with pytest.raises(UserError, match=r"correlation must lie in \[0, 1\], got 1.5"):
        spurious_fashion("train", root=str(fake_fashion_mnist), correlation=1.5)


@pytest.mark.skipif(
    not (datasets.DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_real_test_split_has_1500_per_group():
    ds = spurious_fashion("test")
    assert np.bincount(ds.groups.numpy()).tolist() == [1500] * 4  # 3000 footwear, 4000 upper body


# --- GroupCSVDataset -------------------------------------------------------------------------


def write_csv(folder, text, images=("img/a.png", "img/b.png", "img/c.png")):
    from PIL import Image

    (folder / "img").mkdir(exist_ok=True)
    for name in images:
        Image.new("L", (9, 7), 128).save(folder / name)
    path = folder / "meta.csv"
    path.write_text(text)
    return path


def test_csv_happy_path(tmp_path):
    path = write_csv(tmp_path, "path,label,group\nimg/a.png,3,0\nimg/b.png,7,1\nimg/c.png,7,0\n")
    ds = GroupCSVDataset(str(path), transform=lambda im: im.size)
    assert ds.classes == ("3", "7") and ds.attr_names == ("0", "1")
    assert ds.labels.tolist() == [0, 1, 1] and ds.attrs.tolist() == [0, 1, 0]
    assert ds.groups.tolist() == [0, 3, 2]  # label index * 2 + a
    assert len(ds) == 3 and ds[1] == ((9, 7), 1)
    assert GroupCSVDataset(str(path))[0][0].mode == "RGB"


def test_csv_paths_relative_to_root(tmp_path):
    write_csv(tmp_path, "")
    meta = tmp_path / "elsewhere"
    meta.mkdir()
    (meta / "m.csv").write_text("group,path,label\n1,img/a.png,0\n")  # any column order
    ds = GroupCSVDataset(str(meta / "m.csv"), root=str(tmp_path))
    assert ds.paths == [str(tmp_path / "img/a.png")] and ds.groups.tolist() == [1]


@pytest.mark.parametrize(
    "header, named",
    [
        ("path,label,group,split", "unknown columns: split; missing: none"),
        ("path,label", "unknown columns: none; missing: group"),
        ("file,label,group", "unknown columns: file; missing: path"),
    ],
)
def test_csv_bad_header_names_columns(tmp_path, header, named):
    path = write_csv(tmp_path, header + "\n")
    with pytest.raises(UserError, match=f"{named}.*expected exactly path,label,group"):
        GroupCSVDataset(str(path))


def test_csv_missing_images_counted_with_first_paths(tmp_path):
    rows = "".join(f"img/missing{i}.png,0,0\n" for i in range(5))
    path = write_csv(tmp_path, "path,label,group\nimg/a.png,0,0\n" + rows)
    with pytest.raises(UserError) as err:
        GroupCSVDataset(str(path))
    msg = str(err.value)
    assert "5 image file(s) not found" in msg and str(tmp_path / "img/missing0.png") in msg
    assert "missing3.png" not in msg and "\n" not in msg


def test_csv_non_integer_label_names_the_line(tmp_path):
    path = write_csv(tmp_path, "path,label,group\nimg/a.png,0,0\nimg/b.png,bird,1\n")
    with pytest.raises(UserError, match=r"meta.csv line 3: label must be a non-negative integer, got 'bird'"):
        GroupCSVDataset(str(path))
    path.write_text("path,label,group\nimg/a.png,0\n")
    with pytest.raises(UserError, match="line 2: expected 3 fields"):
        GroupCSVDataset(str(path))


def test_csv_missing_or_empty_file(tmp_path):
    with pytest.raises(UserError, match="group CSV not found"):
        GroupCSVDataset(str(tmp_path / "nope.csv"))
    path = write_csv(tmp_path, "path,label,group\n")
    with pytest.raises(UserError, match="no rows after the header"):
        GroupCSVDataset(str(path))
