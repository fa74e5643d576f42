"""Serializer fields shared by every app's API."""

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A JSON string. DRF's CharField turns a number into its text (`1e-194` became a key's name);
    this one refuses anything but a string, as the schema says."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
