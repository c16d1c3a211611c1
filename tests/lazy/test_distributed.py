"""The lazy engine on a real dask.distributed cluster (2 worker processes, loopback)."""

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import dask.array as da  # noqa: E402

import napari_pyramids as npp  # noqa: E402
from napari_pyramids.lazy import cluster  # noqa: E402


@pytest.fixture(scope="module")
def local_cluster():
    with distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
    ) as lc:
        yield lc


def test_write_runs_on_the_active_client_and_equals_in_memory(local_cluster, tmp_path):
    img = np.random.default_rng(3).random((150, 131), dtype=np.float32)
    with distributed.Client(local_cluster) as client:
        assert cluster.current_client() is client
        with cluster.scheduler_for() as scheduler:
            assert scheduler is client
            assert "2 workers" in cluster.describe(scheduler)
        with distributed.get_task_stream(client=client) as stream:
            out = npp.write_ome_zarr(
                da.from_array(img, chunks=37), tmp_path / "d.zarr", levels=4, chunks=40
            )
        # the cluster's workers ran the REDUCE blocks
        ran = {(str(t["key"]), t["worker"]) for t in stream.data}
        assert any("_reduce_block" in key for key, _ in ran)
        assert {w for _, w in ran} <= set(client.scheduler_info()["workers"])
        lazy_levels = npp.laplacian_pyramid(da.from_array(img, chunks=50), 4)
        bands = client.compute(lazy_levels, sync=True)
    for got, want in zip(npp.read_ome_zarr(out).levels, npp.gaussian_pyramid(img, 4)):
        np.testing.assert_allclose(got.compute(scheduler="threads"), want, atol=1e-6)
    for got, want in zip(bands, npp.laplacian_pyramid(img, 4)):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_scheduler_address_is_used_without_an_active_client(local_cluster, tmp_path):
    img = np.random.default_rng(4).random((64, 70), dtype=np.float32)
    assert cluster.current_client() is None
    out = npp.write_ome_zarr(
        img, tmp_path / "e.zarr", levels=3, client=local_cluster.scheduler_address
    )
    for got, want in zip(npp.read_ome_zarr(out).levels, npp.gaussian_pyramid(img, 3)):
        np.testing.assert_allclose(got.compute(), want, atol=1e-6)
    assert cluster.current_client() is None  # the temporary connection was closed


def test_whole_slide_segmentation_runs_on_the_workers_with_equal_labels(
    local_cluster, tmp_path
):
    torch = pytest.importorskip("torch")
    from napari_pyramids.nn import load_model, segment
    from napari_pyramids.nn.synthetic import make_nuclei_image

    torch.set_num_threads(2)
    model = load_model("nuclei")
    picture, _ = make_nuclei_image((160, 190), np.random.default_rng(8))
    image = (picture.astype(np.float64) / picture.max() * 4000).astype(np.uint16)
    options = {"diameter": 20, "tile_size": 64, "overlap": 16, "context_size": 64}
    want = segment(image, model, device="cpu", **options)
    source = da.from_array(image, chunks=70)
    with distributed.Client(local_cluster) as client:
        with distributed.get_task_stream(client=client) as stream:
            out = npp.segment_to_zarr(
                source, tmp_path / "nuclei.zarr", model, block_size=96, **options
            )
        workers = set(client.scheduler_info()["workers"])
    ran = {(str(t["key"]), t["worker"]) for t in stream.data}
    for step in ("_network_task", "_seed_task", "_grow_task", "_label_task"):
        assert any(step in key for key, _ in ran), step
    assert {worker for _, worker in ran} == workers  # both processes took blocks
    np.testing.assert_array_equal(np.asarray(npp.read_ome_zarr(out).levels[0]), want)


def test_whole_slide_segmentation_at_a_scheduler_address(local_cluster, tmp_path):
    pytest.importorskip("torch")
    from napari_pyramids.nn import segment
    from napari_pyramids.nn.synthetic import make_nuclei_image

    picture, _ = make_nuclei_image((96, 110), np.random.default_rng(9))
    image = (picture.astype(np.float64) / picture.max() * 4000).astype(np.uint16)
    options = {"diameter": 20, "tile_size": 64, "overlap": 16, "context_size": 64}
    assert cluster.current_client() is None
    out = npp.segment_to_zarr(
        image,
        tmp_path / "nuclei.zarr",
        block_size=64,
        client=local_cluster.scheduler_address,
        **options,
    )
    assert cluster.current_client() is None  # the temporary connection was closed
    np.testing.assert_array_equal(
        np.asarray(npp.read_ome_zarr(out).levels[0]),
        segment(image, device="cpu", **options),
    )
