"""etl-kit's benchmarks: run from a checkout (``etl-kit bench``), never part of the installed package."""
