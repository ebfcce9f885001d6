import Foundation
import ZOTuneKernels

/// A recorded graph of device launches (Backend.recordGraph); destroyed, and the blocks its replays
/// write given back to the allocator, when the last reference goes.
public final class DeviceGraph: @unchecked Sendable {
    let id: UInt64
    private let destroy: (UInt64) -> Void
    init(id: UInt64, destroy: @escaping (UInt64) -> Void) { (self.id, self.destroy) = (id, destroy) }
    deinit { destroy(id) }
}

extension KernelBackend {
    /// The off switch of graph recording: on only with ZOTUNE_CUDA_GRAPHS=1, until the replayed
    /// forward has been held to the eager one on a GPU (bench/device/run.sh, docs/cuda.md).
    public static let graphsEnabled = ProcessInfo.processInfo.environment["ZOTUNE_CUDA_GRAPHS"] == "1"

    public func recordGraph(_ body: () throws -> Void) throws -> DeviceGraph? {
        guard Self.graphsEnabled, device == .cuda else { return nil }
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
        if api.graph_launch(graph.id) != 0 { throw BackendError("CUDA graph: \(lastError(api))") }
    }
}
