"""Pure PBX domain logic: registrar, locations, routing. No I/O."""
