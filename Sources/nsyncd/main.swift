print("nsyncd: wiring in progress")
