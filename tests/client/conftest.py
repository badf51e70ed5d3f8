"""The client tier's fixtures: moto's in-process AWS with fake credentials (``aws_fixtures``)."""

from aws_fixtures import aws, aws_env, current_instance_types  # noqa: F401 (fixtures, used by name)
