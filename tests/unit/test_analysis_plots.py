"""Parcel maps: outlines for a region, dots inside each parcel for a country's claims."""

import geopandas as gpd
import matplotlib
import numpy as np
import pytest
from shapely.geometry import Polygon, box

from eolab.analysis import plots

matplotlib.use("Agg")


def _parcels(n):
    # L-shaped parcels: the centroid of an L lies outside it, a dot must not
    shapes = [Polygon([(x, 0), (x + 30, 0), (x + 30, 10), (x + 10, 10), (x + 10, 30), (x, 30)]) for x in 40 * np.arange(n)]
    return gpd.GeoDataFrame({"light": np.array(["green", "red", "yellow"])[np.arange(n) % 3]}, geometry=shapes,
                            crs="EPSG:32633")


def test_a_region_is_drawn_as_outlines_in_the_light_colours():
    gdf = _parcels(9)
    colours = {"green": "#00aa00", "red": "#dd0000", "yellow": "#ffbf00"}
    fig = plots.parcel_map(gdf, "light", colors=colours)
    ax = fig.axes[0]
    drawn = sum(len(c.get_paths()) for c in ax.collections)
    assert drawn == 9 and "dots" not in ax.get_title()
    for c, light in zip(ax.collections, ["green", "red", "yellow"]):  # one collection per light, in order
        assert {matplotlib.colors.to_hex(f) for f in c.get_facecolor()} == {colours[light]}
    matplotlib.pyplot.close(fig)


def test_beyond_max_outlines_each_parcel_is_a_dot_inside_it_in_its_colour():
    gdf = _parcels(30)
    colours = {"green": "#00aa00", "red": "#dd0000", "yellow": "#ffbf00"}
    fig = plots.parcel_map(gdf, "light", colors=colours, title="Parcel checks", max_outlines=10)
    ax = fig.axes[0]
    assert ax.get_title() == "Parcel checks (30 parcels as dots)"
    assert [len(c.get_offsets()) for c in ax.collections] == [10, 10, 10]
    for c, light in zip(ax.collections, ["green", "red", "yellow"]):
        assert matplotlib.colors.to_hex(c.get_facecolor()[0]) == colours[light]
        points = gpd.points_from_xy(*np.asarray(c.get_offsets()).T, crs=gdf.crs)
        own = gdf[gdf.light == light].geometry.to_numpy()
        assert all(p.within(g) for p, g in zip(points, own))  # inside its parcel (an L's centroid is not)
    assert not gdf.geometry.centroid.within(gdf.geometry).any()
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("limit", [None, 5])
def test_no_parcels_draw_an_empty_map(limit):
    fig = plots.parcel_map(_parcels(0), "light", title="none", max_outlines=limit)
    assert fig.axes[0].get_title() == "none" and not fig.axes[0].collections
    matplotlib.pyplot.close(fig)


def test_lon_lat_dots_keep_the_shape_of_the_ground():
    gdf = gpd.GeoDataFrame({"light": ["green"]}, geometry=[box(14, 46, 14.01, 46.01)], crs="EPSG:4326")
    fig = plots.parcel_map(gdf, "light", max_outlines=0)
    ax = fig.axes[0]
    assert ax.get_title() == "(1 parcel as dots)"
    assert ax.get_aspect() == pytest.approx(1 / np.cos(np.radians(46.005)), rel=1e-4)
    matplotlib.pyplot.close(fig)
