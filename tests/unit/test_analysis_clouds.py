"""The s2cloudless cloud mask for Sentinel-2 items without SCL (L1C), and its use by the water method."""

import warnings

import numpy as np
import pytest
import xarray as xr

from eolab.analysis import clouds, water
from eolab.errors import EolabError, EolabWarning

# top-of-atmosphere reflectance (L1C) of land, a lake and a thick cloud (bright everywhere, cirrus band B10 lit)
LAND = {"B01": .12, "B02": .10, "B03": .09, "B04": .08, "B05": .12, "B08": .30, "B8A": .32, "B09": .10, "B10": .004,
        "B11": .20, "B12": .12}
LAKE = {"B01": .11, "B02": .09, "B03": .07, "B04": .05, "B05": .04, "B08": .03, "B8A": .025, "B09": .01, "B10": .002,
        "B11": .01, "B12": .008}
CLOUD = {"B01": .55, "B02": .52, "B03": .50, "B04": .50, "B05": .52, "B08": .55, "B8A": .55, "B09": .25, "B10": .08,
         "B11": .38, "B12": .26}


def l1c_scene(n=80, res=40.0):
    y, x = np.mgrid[0:n, 0:n]
    lake, cloud = x < 30, (y > 50) & (x > 40)
    data = {b: (("time", "y", "x"), np.where(cloud, CLOUD[b], np.where(lake, LAKE[b], LAND[b]))[None].astype("float32"))
            for b in LAND}
    ds = xr.Dataset(data, coords={"time": [np.datetime64("2017-02-16T10:21:01", "ns")],
                                  "y": 5.8e6 - np.arange(n) * res, "x": 3.6e5 + np.arange(n) * res},
                    attrs={"processing:level": "L1C", "crs": "EPSG:32633"})
    return ds, lake, cloud


def test_s2cloudless_finds_the_cloud_not_the_lake_or_the_land():
    ds, lake, cloud = l1c_scene()
    prob = clouds.cloud_probability(ds).values[0]
    assert prob[cloud].min() > 0.9 and prob[lake].max() < 0.2 and prob[~lake & ~cloud].max() < 0.2
    lazy = clouds.cloud_mask(ds.chunk({"time": 1, "y": 40, "x": 40}))
    assert hasattr(lazy.data, "dask")
    mask = lazy.values[0]
    assert mask[cloud].all() and not mask[lake].any()
    # dilated by 320 m (8 px at 40 m) beyond the cloud, not much further
    y, x = np.mgrid[0:80, 0:80]
    assert mask[(y > 50) & (x > 33) & (x <= 40)].mean() > 0.5 and not mask[:, :30].any()


def test_water_on_l1c_without_scl_is_cloud_masked_by_s2cloudless():
    ds, lake, cloud = l1c_scene()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no cloud mask" warning: the detector is the mask
        classes = water.surface_classes(ds, toa="rayleigh").values[0]
    assert np.isnan(classes[cloud]).all()
    assert (classes[lake] == 1).all() and (classes[~lake & ~cloud & ~np.isnan(classes)] == 0).all()
    # without the detector's bands the cube has no mask: said, not silently classified
    with pytest.warns(EolabWarning, match="no cloud mask.*s2cloudless"):
        water.surface_classes(ds[["B02", "B03", "B04", "B08", "B11", "B12"]], toa="rayleigh")


def test_s2cloudless_refuses_what_it_was_not_trained_on():
    ds, _, _ = l1c_scene()
    with pytest.raises(EolabError, match="B10"):
        clouds.cloud_probability(ds.drop_vars("B10"))
    with pytest.raises(EolabError, match="top-of-atmosphere"):
        clouds.cloud_probability(ds.assign_attrs({"processing:level": "L2A"}))
