"""Which folders the wheel holds, and under which names (the rest is in pyproject.toml).

The design card keeps `workflows/` and `activities/` at the top of the repository; they are
installed as `duecourse.workflows` and `duecourse.activities`, so installing duecourse puts
no generic names (`workflows`, `worker`, ...) into site-packages. `worker.py` and
`starter.py` are entry points of a checkout, not installed modules.
"""

from setuptools import find_packages, setup

MAPPED = {"duecourse.workflows": "workflows", "duecourse.activities": "activities"}

setup(packages=[*find_packages(include=["duecourse", "duecourse.*"]), *MAPPED],
      package_dir=MAPPED)
