import GRPCCore

extension ServerContext {
    /// A context for calling a service's handler directly, without a transport.
    public static var testing: ServerContext {
        ServerContext(
            descriptor: MethodDescriptor(fullyQualifiedService: "kangyi.test", method: "Direct"),
            remotePeer: "in-process", localPeer: "in-process", cancellation: .init())
    }
}
