import Foundation
import Logging

/// A PostgreSQL cluster of the machine's PostgreSQL 15, in a folder of the repository (`.data/pg` for
/// `kangyi dev`, `.data/test-pg` for tests): created with initdb on first use, started on a free local port
/// the first time and on the same port ever after, reused while it runs and on later runs. initdb and
/// postgres refuse to run as root, so as root they run as the `postgres` user (`runuser`).
public struct EmbeddedPostgres: Sendable {
    public let dataDirectory: String
    /// Off only for throwaway test clusters: durability is not what tests measure.
    public let durable: Bool
    let binDirectory: String
    let logger: Logger

    public init(dataDirectory: String, durable: Bool = true, logger: Logger) {
        self.dataDirectory = URL(fileURLWithPath: dataDirectory).standardizedFileURL.path
        self.durable = durable
        self.logger = logger
        let candidates = [ProcessInfo.processInfo.environment["KANGYI_PG_BIN"], "/usr/lib/postgresql/15/bin"]
        self.binDirectory = candidates.compactMap { $0 }.first { FileManager.default.fileExists(atPath: $0 + "/initdb") }
            ?? "/usr/lib/postgresql/15/bin"
    }

    /// The superuser URL of the running cluster, starting (and creating) it if needed: on `port` if given,
    /// else on the port it last used (so a crashed cluster comes back where its clients look for it), else
    /// on a free one.
    public func start(port requested: Int? = nil) throws -> DatabaseURL {
        try initializeIfNeeded()
        if let port = runningPort() {
            logger.info("reusing embedded PostgreSQL", metadata: ["data": "\(dataDirectory)", "port": "\(port)"])
            return url(port: port)
        }
        let port = try requested ?? lastPort().flatMap { FreePort.isFree($0) ? $0 : nil } ?? FreePort.find()
        // terse: the server log must not quote rows (DETAIL lines would carry phone numbers).
        var options = "-c listen_addresses=127.0.0.1 -p \(port) -k \(dataDirectory) -c log_error_verbosity=terse"
        #if os(Linux)
        // After a crash PostgreSQL first fsyncs every file of the cluster, one by one: 2 s for 80 databases
        // on an idle machine, and over 60 s for 182 under load (`kangyi db start` then gave up). One
        // syncfs(2) of the file system does the same in milliseconds.
        options += " -c recovery_init_sync_method=syncfs"
        #endif
        if !durable {
            // A throwaway cluster serves the tests, which run in parallel, a pool and a database each:
            // PostgreSQL's default 100 connections were seen refusing some ("too many clients already").
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400"
        }
        // After a crash (kill -9) its old backends may still hold the shared memory for a moment, and
        // PostgreSQL then refuses to start: try again for a few seconds.
        var attempt = 0
        while true {
            do {
                try run(
                    "pg_ctl",
                    ["-D", dataDirectory, "-l", dataDirectory + "/server.log", "-w", "-t", "60", "-o", options, "start"])
                break
            } catch where attempt < 10 {
                attempt += 1
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
        try? "\(port)\n".write(toFile: portFile, atomically: true, encoding: .utf8)
        logger.info("started embedded PostgreSQL", metadata: ["data": "\(dataDirectory)", "port": "\(port)"])
        return url(port: port)
    }

    /// Whether the cluster's postmaster is alive (cheap: no child process; for a watchdog).
    public var isRunning: Bool {
        guard let pid = postmaster()?.pid else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }

    /// Where the port of the last start is kept (`postmaster.pid` goes away with a clean stop).
    private var portFile: String { dataDirectory + "/kangyi.port" }

    private func lastPort() -> Int? {
        guard let text = try? String(contentsOfFile: portFile, encoding: .utf8),
            let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), (1...65535).contains(port)
        else { return nil }
        return port
    }

    /// Stops the cluster (fast shutdown: clients are disconnected, data is flushed). Safe if not running.
    public func stop() {
        guard runningPort() != nil else { return }
        do {
            try run("pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "-t", "60", "stop"])
            logger.info("stopped embedded PostgreSQL", metadata: ["data": "\(dataDirectory)"])
        } catch {
            logger.error("could not stop embedded PostgreSQL: \(error)")
        }
    }

    private func url(port: Int) -> DatabaseURL {
        DatabaseURL(host: "127.0.0.1", port: port, user: "postgres", database: "postgres")
    }

    /// The port of a running postmaster of this folder, read from `postmaster.pid` and confirmed by pg_ctl.
    func runningPort() -> Int? {
        guard let port = postmaster()?.port else { return nil }
        guard (try? run("pg_ctl", ["-D", dataDirectory, "status"], quiet: true)) != nil else { return nil }
        return port
    }

    /// The pid and port `postmaster.pid` records (left behind by a crash: check the pid is alive).
    private func postmaster() -> (pid: Int32, port: Int)? {
        guard let pidFile = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8) else {
            return nil
        }
        let lines = pidFile.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > 3, let pid = Int32(lines[0]), let port = Int(lines[3]) else { return nil }
        return (pid, port)
    }

    private func initializeIfNeeded() throws {
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: dataDirectory + "/PG_VERSION") { return }
        try fileManager.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        if runsAsRoot {
            // postgres must own its folder and be able to reach it through every parent.
            try run("/bin/chown", ["postgres:postgres", dataDirectory], asPostgres: false)
            try run("/bin/chmod", ["700", dataDirectory], asPostgres: false)
            var parent = URL(fileURLWithPath: dataDirectory).deletingLastPathComponent()
            while parent.path != "/" {
                _ = try? run("/bin/chmod", ["o+x", parent.path], asPostgres: false, quiet: true)
                parent = parent.deletingLastPathComponent()
            }
        }
        try run("initdb", ["-D", dataDirectory, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"])
        logger.info("created embedded PostgreSQL cluster", metadata: ["data": "\(dataDirectory)"])
    }

    private var runsAsRoot: Bool { getuid() == 0 }

    @discardableResult
    private func run(_ tool: String, _ arguments: [String], asPostgres: Bool = true, quiet: Bool = false) throws -> String {
        let executable = tool.hasPrefix("/") ? tool : binDirectory + "/" + tool
        let argv = asPostgres && runsAsRoot
            ? ["/usr/sbin/runuser", "-u", "postgres", "--", executable] + arguments
            : [executable] + arguments
        let (status, output) = try ChildProcess.run(argv)
        guard status == 0 else {
            throw PlatformError(
                description: "\(tool) \(arguments.joined(separator: " ")) failed (\(status)): \(quiet ? "" : output)")
        }
        return output
    }
}

/// Runs a program to completion with posix_spawn and waitpid. Not Foundation's `Process`: its exit
/// monitoring was seen here to miss the exit of a child whose own child (the postmaster) lives on.
/// Output goes to a file, not a pipe, which the postmaster would inherit and hold open; the child
/// starts in "/" because the postgres user cannot read root's working directory.
enum ChildProcess {
    static func run(_ argv: [String]) throws -> (status: Int32, output: String) {
        let outputPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("kangyi-\(UUID().uuidString).out").path
        defer { unlink(outputPath) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        closeInheritedDescriptors(&actions)

        let argv = ["/usr/bin/env", "-C", "/"] + argv  // start in "/" (env -C: chdir, then exec)
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, &cArguments, environ)
        guard spawned == 0 else {
            throw PlatformError(description: "could not start \(argv[0]): error \(spawned)")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS, spelled out (the C macros are not imported).
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exitCode, output)
    }
}

/// The postmaster outlives pg_ctl: if it inherited this process's sockets (a server's listener, a client's
/// connection) it would hold them open, and a closed connection would never reach its peer. So the
/// child closes every descriptor above stderr: glibc's closefrom action, looked up at run time because
/// Swift's Glibc module does not export GNU extensions; else each descriptor open now.
private func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
        _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        return
    }
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for descriptor in open.compactMap(Int32.init) where descriptor > 2 {
        posix_spawn_file_actions_addclose(&actions, descriptor)
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
public enum FreePort {
    /// Whether nothing listens on `port` of 127.0.0.1 now.
    public static func isFree(_ port: Int) -> Bool {
        (try? listen(on: port)) != nil
    }

    /// A port nothing listens on now, for a server that binds it a moment later. Chosen below the
    /// kernel's ephemeral range: a port from there (what binding port 0 gives) can meanwhile become the
    /// local port of an outgoing connection — a database connection, say — and the server's bind then
    /// fails (it did, in CI: `kangyi dev` did not start).
    public static func find() throws -> Int {
        let ephemeralStart = ephemeralRangeStart()
        if ephemeralStart - lowest >= 1_000 {
            for _ in 0..<100 {
                let port = Int.random(in: lowest..<ephemeralStart)
                if isFree(port) { return port }
            }
        }
        return try listen(on: 0)
    }

    /// Where ``find()`` starts looking (`scripts/free_port.py` too).
    static let lowest = 20_000

    /// The first port the kernel hands out on its own (Linux's `ip_local_port_range`; 32768 elsewhere).
    static func ephemeralRangeStart() -> Int {
        let range = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        return range?.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32_768
    }

    private static func listen(on port: Int) throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PlatformError(description: "socket() failed") }
        defer { close(fd) }
        // As PostgreSQL binds: connections of a crashed server lingering in TIME_WAIT do not make it busy.
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw PlatformError(description: "port \(port) of 127.0.0.1 is not free") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
