"""API conventions shared by every app: errors, parsing, rendering, tenancy, permissions, pagination."""
