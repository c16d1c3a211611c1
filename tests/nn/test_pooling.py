import pytest
import torch

from napari_pyramids.nn import PyramidPoolingModule, SpatialPyramidPooling


def test_spp_fixed_length_for_any_size():
    spp = SpatialPyramidPooling()
    lengths = {
        spp(torch.randn(2, 5, h, w)).shape
        for h, w in [(13, 17), (64, 40), (4, 4), (3, 2)]
    }
    assert lengths == {torch.Size([2, 5 * (16 + 4 + 1)])}
    assert spp.output_length(5) == 105


def test_spp_bins_are_max_pools():
    x = torch.randn(1, 2, 8, 8)
    out = SpatialPyramidPooling((2, 1))(x)
    torch.testing.assert_close(out[0, 8:], x.amax(dim=(2, 3))[0])
    torch.testing.assert_close(
        out[0, :4], x[0, 0].reshape(2, 4, 2, 4).amax(dim=(1, 3)).flatten()
    )


def test_spp_rejects_bad_config():
    with pytest.raises(ValueError, match="mode"):
        SpatialPyramidPooling(mode="median")
    with pytest.raises(ValueError, match="bins"):
        SpatialPyramidPooling(bins=())


@pytest.mark.parametrize("size", [(6, 6), (11, 29)])
def test_ppm_keeps_size_and_concatenates_input(size):
    ppm = PyramidPoolingModule(8).eval()
    x = torch.randn(1, 8, *size)
    out = ppm(x)
    assert out.shape == (1, 8 + 4 * 2, *size) and ppm.out_channels == 16
    torch.testing.assert_close(out[:, :8], x)
    # the 1x1 bin is constant over the image
    assert torch.allclose(out[0, 8:10], out[0, 8:10, :1, :1].expand(2, *size))
