#if canImport(Glibc)
import Glibc
#endif
import KangyiPlatform
import Synchronization

/// A port nobody listens on and nobody else can be given while this holds it: a socket bound to it
/// (with SO_REUSEADDR) but not listening. Connecting is refused at once — a backend that is down — and a
/// server of the test's own may still listen on it later. (A port merely found free can be handed to
/// another test running in parallel.)
public final class ReservedPort: Sendable {
    public let port: Int
    private let descriptor: Mutex<Int32>

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PlatformError(description: "socket() failed") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard bound == 0, named == 0 else {
            close(fd)
            throw PlatformError(description: "could not reserve a port")
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        descriptor = Mutex(fd)
    }

    public var address: String { "127.0.0.1:\(port)" }

    deinit { descriptor.withLock { _ = close($0) } }
}
