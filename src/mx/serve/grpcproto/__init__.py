"""The KServe V2 gRPC protocol's messages and service, generated from grpc_predict_v2.proto
(see README.md here). Importing them registers the protobuf package `inference`, which
tritonclient.grpc registers too: the two cannot be imported into one process."""
