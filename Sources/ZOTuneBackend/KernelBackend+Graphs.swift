import Foundation
import ZOTuneKernels

/// A recorded graph of device launches (Backend.recordGraph); destroyed, and the blocks its replays
/// write given back to the allocator, when the last reference goes. An emulated graph (tests only,
/// `KernelBackend.graphEmulation`) holds the closure a launch calls instead.
public final class DeviceGraph: @unchecked Sendable {
    let id: UInt64
    let replay: (() throws -> Void)?
    private let destroy: (UInt64) -> Void
    init(id: UInt64, destroy: @escaping (UInt64) -> Void) { (self.id, self.replay, self.destroy) = (id, nil, destroy) }
    init(replay: @escaping () throws -> Void) { (self.id, self.replay, self.destroy) = (0, replay, { _ in }) }
    deinit { destroy(id) }
}

/// The process's switch for CUDA graphs. On unless ZOTUNE_CUDA_GRAPHS=0 (=1 also means on; any
/// other value is refused with one line and leaves graphs off). `disable` turns them off for the
/// rest of the process with one notice line on stderr: what a graph error or a replay that differs
/// from the eager forward does (the caller then runs eagerly).
public enum GraphSwitch {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var disabledReason: String?
    nonisolated(unsafe) private static var refusedSetting: Bool = false

    /// What ZOTUNE_CUDA_GRAPHS asks for: nil (unset), "0" or "1" are understood.
    static let requested: Bool? = {
        switch ProcessInfo.processInfo.environment["ZOTUNE_CUDA_GRAPHS"] {
        case nil, "1": return true
        case "0": return false
        default: return nil
        }
    }()

    public static var isOn: Bool {
        lock.lock(); defer { lock.unlock() }
        guard let on = requested else {
            if !refusedSetting {
                refusedSetting = true
                let v = ProcessInfo.processInfo.environment["ZOTUNE_CUDA_GRAPHS"] ?? ""
                FileHandle.standardError.write(Data("zotune: ZOTUNE_CUDA_GRAPHS=\(v): expected 0 (off) or 1 (on); CUDA graphs off\n".utf8))
            }
            return false
        }
        return on && disabledReason == nil
    }

    /// Turns graphs off for the rest of the process; the first call prints `reason` (one line).
    public static func disable(_ reason: String) {
        lock.lock(); defer { lock.unlock() }
        guard disabledReason == nil else { return }
        disabledReason = reason
        FileHandle.standardError.write(Data("zotune: CUDA graphs off for this process: \(reason); forwards run eagerly\n".utf8))
    }

    /// Why graphs were disabled (nil: they were not).
    public static var disabled: String? { lock.lock(); defer { lock.unlock() }; return disabledReason }

    /// Tests only: undoes `disable`.
    public static func resetForTesting() { lock.lock(); disabledReason = nil; lock.unlock() }
}

extension KernelBackend {
    /// Tests only: makes the CPU "record" a graph as the closure this returns for the recorded body
    /// (`{ body in body }` replays by running the body again, on the inputs then in its buffers),
    /// so the graph cache's logic runs on the CPU. nil (the default): the CPU records nothing.
    nonisolated(unsafe) public static var graphEmulation: ((@escaping () throws -> Void) -> () throws -> Void)?

    /// Whether `recordGraph` would record (the switch is on and the device has graphs): callers
    /// ask before setting up what a recording needs.
    public var recordsGraphs: Bool {
        GraphSwitch.isOn && (device == .cuda || (device == .cpu && Self.graphEmulation != nil))
    }

    public func recordGraph(_ body: @escaping () throws -> Void) throws -> DeviceGraph? {
        guard recordsGraphs else { return nil }
        if device == .cpu, let emulate = Self.graphEmulation { return DeviceGraph(replay: emulate(body)) }
        let api = self.api
        if api.graph_begin() != 0 { throw BackendError("CUDA graph: \(lastError(api))") }
        do {
            try body()
        } catch {
            var g: UInt64 = 0
            if api.graph_end(&g) == 0 { _ = api.graph_destroy(g) }
            throw error
        }
        var g: UInt64 = 0
        if api.graph_end(&g) != 0 || g == 0 { throw BackendError("CUDA graph: \(lastError(api))") }
        return DeviceGraph(id: g) { _ = api.graph_destroy($0) }
    }

    public func launch(_ graph: DeviceGraph) throws {
        if let replay = graph.replay { return try replay() }
        if api.graph_launch(graph.id) != 0 { throw BackendError("CUDA graph: \(lastError(api))") }
    }
}
