"""The op catalogue, one file per family; ``minidl.functional`` re-exports the public functions."""
