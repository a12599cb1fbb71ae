"""The loudspeaker channel: IP players over MQTT, their protocol, devices and programmes."""
