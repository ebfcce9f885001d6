import Foundation

/// The processes of a data-parallel run, through Open MPI loaded at run time (dlopen), so a
/// single-process build and run need no MPI. Only what a ZO step needs: every rank regenerates
/// its directions from the shared seed, so ranks exchange a few numbers per forward (the scores
/// each computed), never gradients or weights.
public final class MPIWorld: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Bytes this rank has contributed to collectives so far (what travels from it per step).
    public private(set) var bytesSent = 0

    private typealias InitFn = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> Int32
    private typealias CommIntFn = @convention(c) (UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Int32
    private typealias AllgatherFn = @convention(c) (UnsafeRawPointer, Int32, UnsafeMutableRawPointer, UnsafeMutableRawPointer, Int32,
                                                    UnsafeMutableRawPointer, UnsafeMutableRawPointer) -> Int32
    private typealias AbortFn = @convention(c) (UnsafeMutableRawPointer, Int32) -> Int32
    private typealias FinalizeFn = @convention(c) () -> Int32

    private let world: UnsafeMutableRawPointer
    private let double: UnsafeMutableRawPointer
    private let uint64: UnsafeMutableRawPointer
    private let allgatherFn: AllgatherFn
    private let abortFn: AbortFn
    private let finalizeFn: FinalizeFn
    private var finished = false

    /// True when this process was started by mpirun/mpiexec (Open MPI or a PMI launcher).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMI_SIZE"] != nil || env["PMIX_RANK"] != nil
    }

    /// Loads Open MPI and joins the world. Run without mpirun it is a world of one.
    public init() throws {
        var handle: UnsafeMutableRawPointer?
        var tried: [String] = []
        for name in ["libmpi.so.40", "libmpi.so", "libmpi.40.dylib", "libmpi.dylib"] {
            // RTLD_GLOBAL: Open MPI's own plugins resolve symbols of libmpi.
            handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL)
            if handle != nil { break }
            tried.append(name)
        }
        guard let h = handle else {
            throw BackendError("MPI: cannot load Open MPI (\(tried.joined(separator: ", "))); install it (Debian: apt install libopenmpi-dev openmpi-bin)")
        }
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let p = dlsym(h, name) else { throw BackendError("MPI: \(name) not found in libmpi (not Open MPI?)") }
            return p
        }
        // Open MPI's handles are the addresses of its predefined objects.
        world = try symbol("ompi_mpi_comm_world")
        double = try symbol("ompi_mpi_double")
        uint64 = try symbol("ompi_mpi_uint64_t")
        let initFn = unsafeBitCast(try symbol("MPI_Init"), to: InitFn.self)
        let commRank = unsafeBitCast(try symbol("MPI_Comm_rank"), to: CommIntFn.self)
        let commSize = unsafeBitCast(try symbol("MPI_Comm_size"), to: CommIntFn.self)
        allgatherFn = unsafeBitCast(try symbol("MPI_Allgather"), to: AllgatherFn.self)
        abortFn = unsafeBitCast(try symbol("MPI_Abort"), to: AbortFn.self)
        finalizeFn = unsafeBitCast(try symbol("MPI_Finalize"), to: FinalizeFn.self)
        guard initFn(nil, nil) == 0 else { throw BackendError("MPI: MPI_Init failed") }
        var r: Int32 = 0, s: Int32 = 0
        _ = commRank(world, &r)
        _ = commSize(world, &s)
        (rank, size) = (Int(r), Int(s))
    }

    /// Every rank's `values` (the same count on every rank), in rank order: each rank then reduces
    /// them in the same order, so the result does not depend on timing or on the number of ranks.
    public func allgather(_ values: [Double]) -> [[Double]] {
        var all = [Double](repeating: 0, count: values.count * size)
        values.withUnsafeBytes { mine in
            all.withUnsafeMutableBytes { out in
                _ = allgatherFn(mine.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, Int32(values.count), double,
                                out.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 8)!, Int32(values.count), double, world)
            }
        }
        bytesSent += values.count * 8
        return (0..<size).map { Array(all[($0 * values.count)..<(($0 + 1) * values.count)]) }
    }

    /// Every rank's `value`, in rank order (e.g. a content hash of θ).
    public func allgather(_ value: UInt64) -> [UInt64] {
        var mine = value
        var all = [UInt64](repeating: 0, count: size)
        all.withUnsafeMutableBytes { out in _ = allgatherFn(&mine, 1, uint64, out.baseAddress!, 1, uint64, world) }
        bytesSent += 8
        return all
    }

    /// Ends every rank of the job (after a rank found something it cannot continue from).
    public func abort(_ code: Int32) -> Never {
        _ = abortFn(world, code)
        exit(code)
    }

    public func finish() {
        guard !finished else { return }
        finished = true
        _ = finalizeFn()
    }

    deinit { finish() }
}
