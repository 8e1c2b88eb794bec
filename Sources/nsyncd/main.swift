import NsyncServer
print("nsyncd: not yet wired")
