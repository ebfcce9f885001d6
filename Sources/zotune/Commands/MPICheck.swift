import ArgumentParser
import Foundation
import ZOTuneBackend

/// `mpirun -np N zotune mpi-check`: joins the MPI world and exchanges one known set of values, so
/// a launch (hostfile, network, the Open MPI install) can be checked before a long run. Each rank
/// prints one JSON line: its rank, the world size, what it gathered and the bytes it sent.
struct MPICheck: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mpi-check",
                                                    abstract: "Check an MPI launch: every rank exchanges a few known numbers.")

    func run() throws {
        let launched = MPIWorld.launchedByMPI   // before MPI_Init, which sets the variables itself
        let world = try MPIWorld()
        defer { world.finish() }
        let gathered = world.allgather([Double(world.rank) + 0.25, Double(world.rank) * 2])
        let hashes = world.allgather(UInt64(0xC0FFEE) &+ UInt64(world.rank))
        let line: [String: Any] = ["rank": world.rank, "size": world.size, "gathered": gathered, "hashes": hashes.map { String($0) },
                                   "bytes_sent": world.bytesSent, "launched_by_mpi": launched]
        print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
        fflush(nil)
    }
}
