"""Vendors' own API surfaces over billing's services: paths, parameters and envelopes exactly as the
vendors' published client libraries call and read them (tests/contracts drives those libraries)."""
