"""Package discovery for the fixed repository layout (everything else is in pyproject.toml).

The design fixes the folders (backend/, shared/) and the import names (flowvq, flowvq_shared);
pyproject.toml alone cannot find subpackages under a renamed folder, so they are found here:
every folder with an __init__.py under backend/ becomes flowvq.<sub>, under shared/
flowvq_shared.<sub>. A new subpackage ships without touching this file
(tests/test_packaging.py checks the built wheel).
"""
from setuptools import find_packages, setup

PACKAGE_DIR = {"flowvq": "backend", "flowvq_shared": "shared"}


def packages() -> list[str]:
    out = []
    for name, folder in PACKAGE_DIR.items():
        out.append(name)
        out += [f"{name}.{sub}" for sub in find_packages(folder, exclude=["*.__pycache__"])]
    return out


setup(packages=packages(), package_dir=PACKAGE_DIR)
