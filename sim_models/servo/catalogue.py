"""Transitional re-export for the twin's callers: the catalogue lives in servo_core.catalogue."""

from servo_core.catalogue import ServoSpec, catalogue, model_name, servo_spec

__all__ = ["ServoSpec", "catalogue", "model_name", "servo_spec"]
