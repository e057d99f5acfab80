import os

os.environ.setdefault("NFMIX_DOWNLOAD", "0")  # tests never reach for the network
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
