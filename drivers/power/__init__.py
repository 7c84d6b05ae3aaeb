"""Shore power and house battery: GPIO mains-detect, Linux power_supply sysfs, Victron VE.Direct."""
