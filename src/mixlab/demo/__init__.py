"""The demo: `flow` (the driver behind `mixlab demo`, running every verb in-process on a real corpus) and
`corpus` (the demo corpus, built from the text of installed and registry packages)."""

from mixlab.demo.flow import METHODS, Demo, DemoConfig, run_demo

__all__ = ["METHODS", "Demo", "DemoConfig", "run_demo"]
