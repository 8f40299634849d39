import Foundation
import GRPCCore
import KangyiPlatform
import NIOCore
import NIOHPACK
import NIOHTTP2

/// One call through the ``FrontDoor``: the caller's HTTP/2 stream glued to a stream to its target — the
/// backend (a direct call) or the gateway's own server. Frames go across as they come, each side read
/// only while the other can take more (HTTP/2 flow control then holds back a fast sender). Everything
/// runs on the gateway's event loop.
///
/// A direct call is logged and counted here, as the gateway's server logs the calls it forwards. If its
/// backend stream fails before any answer — the connection lost, the backend restarting — a call whose
/// whole request was kept (not a client stream, up to 64 KiB) is handed to the gateway's own server,
/// which retries UNAVAILABLE as it always has; otherwise the caller gets UNAVAILABLE.
final class RelayedCall {
    let door: FrontDoor
    let own: BackendConnections
    let caller: RelayEnd
    private var target: RelayEnd?
    private var phase = Phase.awaitingHeaders
    /// The caller's frames that came while the target stream was being opened.
    private var pending: [HTTP2Frame.FramePayload] = []
    /// The request as the caller sent it, while a direct call may still be handed to the gateway's server.
    private var kept: [HTTP2Frame.FramePayload]?
    private var keptBytes = 0
    private var direct: DirectCall?
    private var finished = false
    private var answered = false
    private var requestEnded = false
    private var responseEnded = false
    private var callerClosed = false
    /// The connection the target stream is on.
    private var link: BackendLink?
    /// How the backend reset the target stream, if it did.
    private var targetReset: HTTP2ErrorCode?
    /// The door has reset the target stream (the caller's cancellation, passed on).
    private var targetCancelled = false
    /// A direct stream's place among its token's open streams.
    private var openStream: OpenStreams.Ticket?
    /// The door answered the caller itself and ended its stream (``answer(_:_:)``).
    private var endedHere = false

    private enum Phase { case awaitingHeaders, lookingUp, waitingForRoom, opening, relaying }

    static let keptLimit = 64 * 1024

    init(door: FrontDoor, own: BackendConnections) {
        self.door = door
        self.own = own
        self.caller = RelayEnd()
        caller.call = self
    }

    // MARK: Frames from either side

    func received(_ frame: HTTP2Frame.FramePayload, from end: RelayEnd) {
        if end === caller {
            fromCaller(frame)
        } else if end === target {
            fromTarget(frame)
        }
    }

    private func fromCaller(_ frame: HTTP2Frame.FramePayload) {
        if case .rstStream(let code) = frame {
            // Not kept or queued: a stream not yet open to the target closes with the caller's (``closed(_:)``).
            if phase == .relaying { cancelTarget(code) }
            return
        }
        if frame.endsStream { requestEnded = true }
        switch phase {
        case .awaitingHeaders:
            guard case .headers(let request) = frame else { return caller.close() }
            route(frame, request, lookedUp: false)
        case .lookingUp, .waitingForRoom, .opening:
            keep(frame)
            pending.append(frame)
        case .relaying:
            keep(frame)
            target?.send(frame)
        }
    }

    private func fromTarget(_ frame: HTTP2Frame.FramePayload) {
        switch frame {
        case .headers(var response):
            answered = true
            kept = nil
            if direct != nil {
                for key in CallerIdentity.gatewayOwnedKeys { response.headers.remove(name: key) }
                if response.endStream { observe(response.headers) }
            }
            if response.endStream { responseEnded = true }
            caller.send(.headers(response))
        case .data(let data):
            answered = true
            kept = nil
            if data.endStream { responseEnded = true }
            caller.send(frame)
        case .rstStream(let code):
            // Only a reset the backend sent: a stream dropped as its connection went away closes with an
            // error too (``RelayEnd/errorCaught``), and is answered as a lost connection.
            targetReset = code
        default:
            break
        }
    }

    /// Opens the call's target stream: its backend's, or the gateway server's.
    private func route(_ frame: HTTP2Frame.FramePayload, _ request: HTTP2Frame.FramePayload.Headers, lookedUp: Bool) {
        switch door.way(for: request.headers, lookedUp: lookedUp) {
        case .direct(let call):
            door.directCalls.increment()
            direct = call
            kept = call.route.replayable ? [frame] : nil
            for early in pending { keep(early) }
            phase = .waitingForRoom
            call.backend.whenRoom { [self] link in
                guard !callerClosed else { return }
                if let link {
                    open(on: link, first: .headers(.init(headers: call.headers, endStream: request.endStream)))
                } else if call.backend.isUp {
                    // Its connections stayed full: the backend is not keeping up. Nothing reached it: safe to retry.
                    answer(.unavailable, "the backend is busy; retry shortly")
                } else {
                    // Its connections went down: the gateway's server takes the call, and retries.
                    finish(.handedOver)
                    direct = nil
                    kept = nil
                    toServer(frame, handedOver: true)
                }
            }
        case .lookUp(let token):
            phase = .lookingUp
            let call = NIOLoopBound(self, eventLoop: door.loop)
            door.lookUp(token) {
                let call = call.value
                guard !call.callerClosed else { return }
                call.route(frame, request, lookedUp: true)
            }
        case .server:
            toServer(frame)
        }
    }

    /// Opens the call's stream to the gateway's own server, once one of its connections has room.
    /// `handedOver`: a direct call whose backend failed it, already counted as direct.
    private func toServer(_ first: HTTP2Frame.FramePayload, handedOver: Bool = false) {
        phase = .waitingForRoom
        own.whenRoom { [self] link in
            guard !callerClosed else { return }
            if let link {
                if !handedOver { door.serverCalls.increment() }
                open(on: link, first: first)
            } else {
                answer(.unavailable, own.isUp ? "the gateway is busy; retry shortly" : "the gateway is not ready; retry shortly")
            }
        }
    }

    /// Ends a direct stream from outside (``OpenStreams``: its token revoked or expired, the gateway shutting
    /// down): `status` to the caller, and the backend's stream cancelled.
    private func endStream(with status: ServiceError) {
        openStream = nil
        guard !finished, !responseEnded, !callerClosed else { return }
        answer(status.code, status.message)
        cancelTarget(.cancel)
    }

    /// Ends the call with a status of the door's own: its trailers, or its only headers if nothing was
    /// answered yet. A caller still sending (an upload, a chat) is told to stop with RST_STREAM NO_ERROR
    /// after them, as gRPC's HTTP/2 mapping has it, not by closing the stream, which resets it CANCEL: a
    /// revoked token's upload, ended so, reached grpcio as CANCELLED (which retry policies do not retry),
    /// not as its status. Logged first: the answer may close the caller's stream, which would log the call
    /// as its caller leaving.
    private func answer(_ code: RPCError.Code, _ message: String) {
        finish(.failed(code, message))
        endedHere = true
        caller.send(answered ? Self.trailers(code: code, message: message) : Self.trailersOnly(code: code, message: message))
        if !requestEnded { caller.send(.rstStream(.noError)) }
        caller.flush()
    }

    private func keep(_ frame: HTTP2Frame.FramePayload) {
        guard kept != nil else { return }
        if case .data(let data) = frame { keptBytes += data.data.readableBytes }
        if keptBytes > Self.keptLimit { kept = nil } else { kept?.append(frame) }
    }

    // MARK: The target stream

    private func open(on link: BackendLink, first: HTTP2Frame.FramePayload) {
        phase = .opening
        let end = RelayEnd()
        end.call = self
        target = end
        self.link = link
        targetCancelled = false
        let handler = NIOLoopBound(end, eventLoop: door.loop)
        let opened = link.createStream { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler.value) }
        }
        opened.assumeIsolated().whenComplete { [self] result in
            guard end === target else { return }
            switch result {
            case .success where callerClosed:
                end.close()
            case .success:
                phase = .relaying
                if let call = direct, call.route.streams, openStream == nil {
                    let (relayed, loop) = (NIOLoopBound(self, eventLoop: door.loop), door.loop)
                    openStream = door.plan.tokens.openStreams.open(token: call.token) { status in
                        loop.execute { relayed.value.endStream(with: status) }
                    }
                }
                end.send(first)
                for frame in pending { end.send(frame) }
                pending = []
                end.flushSoon()
                caller.resumeReading()
            case .failure:
                targetFailed()
            }
        }
    }

    /// The target's stream ended before its answer did.
    private func targetFailed() {
        target?.call = nil
        target = nil
        if let code = targetReset, code != .refusedStream {
            // The backend refused the stream itself (a message beyond its transport's limit): the caller
            // sees that reset, as it would calling the backend, and does not retry as after a lost
            // connection.
            finish(.failed(code == .cancel ? .cancelled : .internalError, "the backend reset the stream"))
            caller.send(.rstStream(code))
            caller.flush()
            caller.close()
            return
        }
        if !answered, direct != nil, let request = kept, requestEnded, !callerClosed, own.isUp {
            // Nothing came back: the gateway's server takes the call as the caller sent it.
            finish(.handedOver)
            direct = nil
            kept = nil
            pending = Array(request.dropFirst())
            toServer(request[0], handedOver: true)
            return
        }
        answer(.unavailable, "the backend's connection was lost")
    }

    // MARK: Flow control and closing, from ``RelayEnd``

    /// Whether `end` may read more: the other side can take it.
    func mayRead(_ end: RelayEnd) -> Bool {
        if end === caller {
            switch phase {
            case .awaitingHeaders: return true
            case .lookingUp, .waitingForRoom, .opening: return false
            case .relaying: return target?.isWritable ?? true
            }
        }
        return caller.isWritable
    }

    func readComplete(_ end: RelayEnd) {
        if end === caller { target?.flushSoon() } else { caller.flushSoon() }
    }

    func becameWritable(_ end: RelayEnd) {
        if end === caller { target?.resumeReading() } else { caller.resumeReading() }
    }

    /// Each end's handler lets go of the call when its stream closes, and the call of the target's.
    func closed(_ end: RelayEnd) {
        if end === caller {
            callerClosed = true
            caller.call = nil
            finish(.failed(.cancelled, "the caller left before the answer"))
            if !responseEnded {
                if phase == .relaying { cancelTarget(.cancel) }
                target?.close()
            } else if !requestEnded {
                // Answered whole, but its request never ended: the target stream is still open on this
                // side and would hold one of the connection's concurrent streams for ever (1,000 of them,
                // and every later call on that connection waited unanswered). Ending the request closes it
                // without a reset, which the backend would count towards its reset-flood limit.
                target?.endRequest()
            }
        } else if end === target {
            if targetCancelled || responseEnded || callerClosed {
                caller.flush()
                finish(targetCancelled
                    ? .failed(.cancelled, "the caller cancelled the call")
                    : .failed(.internalError, "the backend ended the call without a status"))
                target?.call = nil
                target = nil
                if !requestEnded, !endedHere { caller.close() }
            } else {
                targetFailed()
            }
        }
    }

    /// Passes the caller's cancellation on, once, while the backend still owes an answer: the backend
    /// stops its work. A caller's reset after the answer is not passed on; ``closed(_:)`` ends the target
    /// stream without one. Each reset counts towards its link's budget (``BackendLink``).
    private func cancelTarget(_ code: HTTP2ErrorCode) {
        guard !responseEnded, !targetCancelled, let target else { return }
        targetCancelled = true
        target.send(.rstStream(code))
        target.flush()
        link?.resetSent()
    }

    // MARK: The direct call's log line and metrics

    private func observe(_ trailers: HPACKHeaders) {
        let status = trailers.first(name: "grpc-status").flatMap(Int.init).flatMap(Status.Code.init(rawValue:))
        if status == .ok { return finish(.ok) }
        let code = status.flatMap { RPCError.Code($0) } ?? .unknown
        finish(.failed(code, trailers.first(name: "grpc-message")?.removingPercentEncoding))
    }

    /// How a direct call left this door.
    private enum Outcome {
        case ok
        case failed(RPCError.Code, String?)
        /// To the gateway's server, which logs it.
        case handedOver
    }

    /// Logs and counts a direct call once, and gives back its in-flight slot.
    private func finish(_ outcome: Outcome) {
        if let ticket = openStream {
            door.plan.tokens.openStreams.close(ticket)
            openStream = nil
        }
        guard let call = direct, !finished else { return }
        finished = true
        if call.counted { door.placement.inFlight.leave() }
        let code: String
        let message: String?
        switch outcome {
        case .ok: (code, message) = ("ok", nil)
        case .failed(let failure, let text): (code, message) = (CallObserverInterceptor.name(of: failure), text)
        case .handedOver: return
        }
        door.observer.finish(method: call.route.method, code: code, identity: call.identity, since: call.start, message: message)
    }

    // MARK: Answers of the door's own

    static func trailersOnly(code: RPCError.Code, message: String) -> HTTP2Frame.FramePayload {
        var headers: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
        headers.add(contentsOf: statusHeaders(code: code, message: message))
        return .headers(.init(headers: headers, endStream: true))
    }

    static func trailers(code: RPCError.Code, message: String) -> HTTP2Frame.FramePayload {
        .headers(.init(headers: statusHeaders(code: code, message: message), endStream: true))
    }

    private static func statusHeaders(code: RPCError.Code, message: String) -> HPACKHeaders {
        [
            "grpc-status": "\(Status.Code(code).rawValue)",
            "grpc-message": message.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: " .,;:'-_"))) ?? "",
        ]
    }
}

/// One side of a ``RelayedCall``, in its HTTP/2 stream channel's pipeline. Reads are passed on only while
/// the other side can take what they bring.
final class RelayEnd: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    var call: RelayedCall?
    private var context: ChannelHandlerContext?
    private var readHeld = false
    private var flushScheduled = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        call?.received(unwrapInboundIn(data), from: self)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        call?.readComplete(self)
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { call?.becameWritable(self) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        call?.closed(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if call?.mayRead(self) ?? true { context.read() } else { readHeld = true }
    }

    func resumeReading() {
        guard readHeld, let context else { return }
        readHeld = false
        context.read()
    }

    func send(_ frame: HTTP2Frame.FramePayload) { context?.write(wrapOutboundOut(frame), promise: nil) }
    func flush() { context?.flush() }

    /// Flushes once what the current turn of the event loop wrote. A stream channel reports the end of a
    /// read after each frame: flushed there, a call's headers and message went to the backend as two
    /// packets (two wake-ups of the backend) instead of one.
    func flushSoon() {
        guard !flushScheduled, let context else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute { [self] in
            flushScheduled = false
            flush()
        }
    }

    func close() { context?.close(promise: nil) }
    /// Ends the stream's outbound half: an empty DATA frame with END_STREAM.
    func endRequest() {
        send(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
        flush()
    }
    var isWritable: Bool { context?.channel.isWritable ?? false }
}

extension HTTP2Frame.FramePayload {
    var endsStream: Bool {
        switch self {
        case .headers(let headers): headers.endStream
        case .data(let data): data.endStream
        default: false
        }
    }
}
