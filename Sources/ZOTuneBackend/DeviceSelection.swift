import Foundation
import ZOTuneKernels

/// What the user asked for with `--device` or ZOTUNE_DEVICE.
public enum DeviceRequest: String, Sendable, CaseIterable {
    case auto, cpu, cuda

    /// `flag` if given, else ZOTUNE_DEVICE, else auto.
    public static func resolve(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DeviceRequest {
        let text = flag ?? environment["ZOTUNE_DEVICE"] ?? "auto"
        guard let request = DeviceRequest(rawValue: text.lowercased()) else {
            let source = flag != nil ? "--device" : "ZOTUNE_DEVICE"
            throw BackendError("\(source) must be auto, cpu or cuda (got \"\(text)\")")
        }
        return request
    }
}

/// The CUDA library, found and loaded at run time (nothing links CUDA at build time).
public enum CUDALibrary {
    public static let fileName = "libzotune_cuda.so"

    /// Where to look, in order: ZOTUNE_CUDA_LIB, next to the executable, Kernels/build/ under the
    /// current directory, then the dynamic loader's own search (LD_LIBRARY_PATH).
    public static func candidates(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        if let explicit = environment["ZOTUNE_CUDA_LIB"], !explicit.isEmpty { return [explicit] }
        var paths: [String] = []
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        paths.append(exe.deletingLastPathComponent().appendingPathComponent(fileName).path)
        paths.append(FileManager.default.currentDirectoryPath + "/Kernels/build/" + fileName)
        return paths.filter { FileManager.default.fileExists(atPath: $0) } + [fileName]
    }

    public struct Loaded: @unchecked Sendable {
        public let table: UnsafePointer<zt_backend_api>
        public let devices: Int
        public let path: String
    }

    /// Loads the first candidate that opens, or explains why none did.
    public static func load(environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<Loaded, BackendError> {
        var reasons: [String] = []
        for path in candidates(environment: environment) {
            var table: UnsafePointer<zt_backend_api>?
            var devices: Int32 = 0
            var err = [CChar](repeating: 0, count: 512)
            if zt_cuda_load(path, &table, &devices, &err, err.count) == 0, let table {
                return .success(Loaded(table: table, devices: Int(devices), path: path))
            }
            let reason = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            reasons.append(reason)
            if reason.hasPrefix("no CUDA device") { break }  // the library is fine; the machine has no GPU
        }
        let reason = reasons.first { $0.hasPrefix("no CUDA device") } ?? reasons.last ?? "\(fileName) not found"
        return .failure(BackendError(reason))
    }
}

/// Picks the backend for a request: `auto` takes CUDA only when the library loads and reports a
/// device, otherwise the CPU with one notice line; `cuda` without a usable device is an error.
public enum DeviceSelection {
    public struct Choice: Sendable {
        public let backend: KernelBackend
        /// One line for the user when auto fell back to the CPU.
        public let notice: String?
    }

    public static func select(_ request: DeviceRequest, threads: Int? = nil,
                              environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Choice {
        switch request {
        case .cpu:
            return Choice(backend: .cpu(threads: threads), notice: nil)
        case .cuda:
            do {
                return Choice(backend: try cudaBackend(try CUDALibrary.load(environment: environment).get(), environment: environment), notice: nil)
            } catch let error as BackendError {
                throw BackendError("--device cuda: \(error.message)")
            }
        case .auto:
            // No library, no device, or a GPU the library cannot run on (below sm_80): the CPU.
            do {
                return Choice(backend: try cudaBackend(try CUDALibrary.load(environment: environment).get(), environment: environment), notice: nil)
            } catch let error as BackendError {
                return Choice(backend: .cpu(threads: threads), notice: "device: CPU (CUDA unavailable: \(error.message))")
            }
        }
    }

    /// Which GPU this process uses: $ZOTUNE_CUDA_DEVICE, else its local rank under MPI (one GPU
    /// per rank on a machine: Open MPI, MPICH/Intel MPI or Slurm's variable) modulo the devices, else 0.
    public static func cudaDeviceIndex(environment: [String: String], devices: Int) -> Int {
        if let s = environment["ZOTUNE_CUDA_DEVICE"], let i = Int(s) { return i }
        for key in ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"] {
            if let s = environment[key], let r = Int(s), r >= 0, devices > 0 { return r % devices }
        }
        return 0
    }

    static func cudaBackend(_ lib: CUDALibrary.Loaded, environment: [String: String]) throws -> KernelBackend {
        let api = lib.table.pointee
        let device = cudaDeviceIndex(environment: environment, devices: lib.devices)
        guard device >= 0 && device < max(1, lib.devices) else {
            throw BackendError("CUDA device \(device) does not exist (\(lib.devices) found; ZOTUNE_CUDA_DEVICE or the MPI local rank picks it)")
        }
        guard api.set_device(Int32(device)) == 0 else {
            // set_device refuses a GPU below sm_80 with a line naming it and its capability.
            let reason = lastError(api)
            throw BackendError(reason.hasPrefix("CUDA device") ? reason : "cannot select CUDA device \(device) of \(lib.devices): \(reason)")
        }
        var name = [CChar](repeating: 0, count: 256)
        _ = api.device_name(Int32(device), &name, name.count)
        let deviceName = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return KernelBackend(device: .cuda, table: lib.table,
                             summary: "CUDA: \(deviceName) (device \(device) of \(lib.devices), \(lib.path))",
                             ledger: MemoryLedger(name: "cuda"))
    }
}
