ORIGIN = "decoy"
