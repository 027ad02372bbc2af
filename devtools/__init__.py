"""Development stand-ins for outside systems (localstripe, an embedded MQTT broker): run beside
the app in development and tests, never imported by a business module."""
