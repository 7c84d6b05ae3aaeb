"""GPS drivers: gpsd over its JSON protocol (gpsd_driver) and a raw NMEA serial receiver (nmea_driver)."""
