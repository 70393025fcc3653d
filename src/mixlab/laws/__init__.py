"""Mixing laws behind one interface (`fit(obs)`, `predict(mixtures, steps)`, `to_dict/from_dict`),
the observations they consume, and their evaluation protocols."""

from mixlab.laws import bimix, dml, powerlaw, regmix, transfer  # noqa: F401  (registers the laws)
from mixlab.laws.base import LAWS, Law, get_law, law_from_dict, load_law
from mixlab.laws.observations import Observations, build_observations, load_observations
from mixlab.runs import read_runs, write_runs

__all__ = [
    "LAWS",
    "Law",
    "Observations",
    "build_observations",
    "get_law",
    "law_from_dict",
    "load_law",
    "load_observations",
    "read_runs",
    "write_runs",
]
