"""Worked example for downstream planning tools: forecast speeds -> travel times -> fastest route.

A student is trained on the synthetic road network with the real trainer (one short epoch), exported
to one file, loaded with :class:`stgkd.Forecaster`, asked for the next hour, and its forecast speeds
(mph) become edge travel times on the networkx road graph, on which ``networkx.shortest_path`` finds the
fastest route for a trip leaving now and one leaving in 30 minutes.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from stgkd import Forecaster
from stgkd.data.synthetic import generate
from stgkd.engine import TrainConfig, train_model
from stgkd.export import export_student

KMH_PER_MPH = 1.609344
MIN_SPEED_MPH = 3.0  # a jammed or dead sensor must not make an edge infinitely slow


def travel_minutes(road: nx.DiGraph, speeds_mph: pd.Series) -> dict[tuple[int, int], float]:
    """Minutes to drive each road segment: ``length_km`` over the mean forecast speed of the sensors at
    its two ends (mph -> km/h), floored at ``MIN_SPEED_MPH``."""
    times = {}
    for u, v, edge in road.edges(data=True):
        mph = (speeds_mph[road.nodes[u]["sensor_id"]] + speeds_mph[road.nodes[v]["sensor_id"]]) / 2.0
        kmh = max(float(mph), MIN_SPEED_MPH) * KMH_PER_MPH
        times[(u, v)] = edge["length_km"] / kmh * 60.0
    return times


def fastest_route(road: nx.DiGraph, speeds_mph: pd.Series, source: int, target: int) -> tuple[list[int], float]:
    nx.set_edge_attributes(road, travel_minutes(road, speeds_mph), "minutes")
    route = nx.shortest_path(road, source, target, weight="minutes")
    return route, nx.path_weight(road, route, weight="minutes")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("planning")
    data, road = generate(num_nodes=12, num_days=3, seed=0)
    train_model(data, "gcn-gru", root / "run", hparams={"hidden": 16, "graph_op": "dense"},
                config=TrainConfig(epochs=1, batch_size=32, limit_batches=4, patience=0, device="cpu"),
                progress=False, log=False)
    student = export_student(root / "run" / "best.pt", root / "student.pt")
    speeds = pd.DataFrame(data.values[:, :, 0], index=data.timestamps, columns=data.sensor_ids)
    return Forecaster.load(student), road, speeds


def test_forecast_next_hour_and_route_now_and_in_30_minutes(setup):
    fc, road, speeds = setup
    history = speeds.loc[:"2024-01-03 17:00"].iloc[-fc.input_steps:]  # the last hour, up to 17:00
    forecast = fc.predict(history)
    assert fc.horizon * fc.interval == pd.Timedelta(hours=1).to_pytimedelta()
    assert forecast.index[0] == pd.Timestamp("2024-01-03 17:05") and forecast.index[-1] == pd.Timestamp("2024-01-03 18:00")
    assert list(forecast.columns) == list(speeds.columns)
    assert np.isfinite(forecast.to_numpy()).all() and (forecast.to_numpy() > 0).all()

    source, target = 0, max(road.nodes)  # opposite corners of the grid
    plans = {}
    for label, when in (("now", "2024-01-03 17:05"), ("in 30 min", "2024-01-03 17:30")):
        step_speeds = forecast.loc[when]
        route, minutes = fastest_route(road, step_speeds, source, target)
        plans[label] = (route, minutes, step_speeds)

        # a valid path of the road graph from source to target
        assert route[0] == source and route[-1] == target and len(set(route)) == len(route)
        assert all(road.has_edge(u, v) for u, v in zip(route, route[1:]))

        # one edge's time by hand, from the forecast speeds of its two sensors
        u, v = route[0], route[1]
        a, b = road.nodes[u]["sensor_id"], road.nodes[v]["sensor_id"]
        mph = (forecast.loc[when, a] + forecast.loc[when, b]) / 2
        by_hand = road.edges[u, v]["length_km"] / (max(mph, MIN_SPEED_MPH) * 1.609344) * 60
        assert road.edges[u, v]["minutes"] == pytest.approx(float(by_hand), rel=1e-6)  # float32 forecasts

        # the route's time is the sum of its edges' times, and no other simple path is faster
        assert minutes == pytest.approx(sum(road.edges[e]["minutes"] for e in zip(route, route[1:])))
        best_other = min(nx.path_weight(road, p, "minutes")
                         for p in nx.all_simple_paths(road, source, target, cutoff=len(road) - 1))
        assert minutes == pytest.approx(best_other)

    # the two plans read different forecast steps
    assert not np.array_equal(plans["now"][2].to_numpy(), plans["in 30 min"][2].to_numpy())
