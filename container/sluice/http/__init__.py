"""The HTTP room: Flask routes (parse -> driver -> encode), JSON bodies, errors, health."""
