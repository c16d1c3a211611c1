import pytest
import torch
import torch.nn.functional as F
from torch import nn

from napari_pyramids.nn import ASPP, ASPPConv, ASPPPooling, DeepLabHead


@pytest.mark.parametrize("separable", [False, True])
@pytest.mark.parametrize("size", [(17, 23), (9, 31), (1, 1)])
def test_aspp_keeps_spatial_size(size, separable):
    aspp = ASPP(8, (1, 2, 5), 4, separable=separable).eval()
    x = torch.randn(1, 8, *size)
    assert aspp(x).shape == (1, 4, *size)
    for branch in aspp.convs:
        assert branch(x).shape[-2:] == size


def _bare_conv(rate):
    branch = ASPPConv(3, 5, rate)
    return branch[0]


def test_rate_one_atrous_conv_is_an_ordinary_conv():
    atrous = _bare_conv(1)
    ordinary = nn.Conv2d(3, 5, 3, padding=1, bias=False)
    ordinary.weight.data.copy_(atrous.weight.data)
    x = torch.randn(2, 3, 15, 12)
    torch.testing.assert_close(atrous(x), ordinary(x))


@pytest.mark.parametrize("rate", [2, 3, 6])
def test_rate_r_conv_equals_conv_with_zero_dilated_kernel(rate):
    atrous = _bare_conv(rate)
    size = 2 * rate + 1
    dilated = torch.zeros(5, 3, size, size)
    dilated[:, :, ::rate, ::rate] = atrous.weight.data
    x = torch.randn(2, 3, 19, 14)
    torch.testing.assert_close(atrous(x), F.conv2d(x, dilated, padding=rate))


def test_pinned_image_pooling_is_broadcast():
    pool = ASPPPooling(4, 3).eval()
    x = torch.randn(1, 4, 7, 9)
    torch.testing.assert_close(pool(x), pool.pool(x).expand(1, 3, 7, 9))
    pool.fixed = torch.arange(3.0).reshape(1, 3, 1, 1)
    assert torch.equal(pool(x)[0, :, 4, 6], torch.arange(3.0))


def _bn(prefix, n=256):
    return {
        f"{prefix}.weight": [n],
        f"{prefix}.bias": [n],
        f"{prefix}.running_mean": [n],
        f"{prefix}.running_var": [n],
        f"{prefix}.num_batches_tracked": [],
    }


def torchvision_head_shapes():
    """deeplabv3_resnet50 head (21 classes), as listed in STYLE.md (b)."""
    shapes = {
        "classifier.0.convs.0.0.weight": [256, 2048, 1, 1],
        **_bn("classifier.0.convs.0.1"),
    }
    for i in (1, 2, 3):
        shapes[f"classifier.0.convs.{i}.0.weight"] = [256, 2048, 3, 3]
        shapes.update(_bn(f"classifier.0.convs.{i}.1"))
    shapes["classifier.0.convs.4.1.weight"] = [256, 2048, 1, 1]
    shapes.update(_bn("classifier.0.convs.4.2"))
    shapes["classifier.0.project.0.weight"] = [256, 1280, 1, 1]
    shapes.update(_bn("classifier.0.project.1"))
    shapes["classifier.1.weight"] = [256, 256, 3, 3]
    shapes.update(_bn("classifier.2"))
    shapes["classifier.4.weight"] = [21, 256, 1, 1]
    shapes["classifier.4.bias"] = [21]
    return shapes


def test_torchvision_head_state_dict_loads_key_for_key():
    shapes = torchvision_head_shapes()
    head = nn.Module()
    head.classifier = DeepLabHead(2048, 21)
    ours = {k: list(v.shape) for k, v in head.state_dict().items()}
    assert ours == shapes
    assert sum(p.numel() for p in head.parameters()) == 16_130_837
    state = {
        k: torch.randn(s) if s else torch.tensor(7, dtype=torch.long)
        for k, s in shapes.items()
    }
    head.load_state_dict(state, strict=True)
    torch.testing.assert_close(
        head.classifier[0].convs[2][0].weight, state["classifier.0.convs.2.0.weight"]
    )
    assert head.classifier[0].convs[2][0].dilation == (24, 24)
    assert head.classifier[0].branch_names == [
        "1x1",
        "rate 12",
        "rate 24",
        "rate 36",
        "image pooling",
    ]


def test_image_pooling_bn_needs_eval_with_batch_of_one():
    aspp = ASPP(4, (1,), 2)
    with pytest.raises(ValueError, match="more than 1 value"):
        aspp.train()(torch.randn(1, 4, 8, 8))
    assert aspp.eval()(torch.randn(1, 4, 8, 8)).shape == (1, 2, 8, 8)
