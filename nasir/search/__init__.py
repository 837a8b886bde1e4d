"""Search drivers: they drive lowered modules; they are not passes."""
