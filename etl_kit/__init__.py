"""etl-kit: provision, run, watch and analyse an event-driven S3 -> Glue -> Redshift pipeline."""

__version__ = "0.1.0"
