"""The reference player: a real MQTT client that speaks the player protocol (coso player)."""
