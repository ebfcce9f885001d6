import Foundation
import ZOTuneBackend
import ZOTuneModels

/// What the matrix optimizers (ZO-Muon, Jaguar-Muon) need beyond the elementwise ones: which
/// tensors they orthogonalise, and one Newton–Schulz workspace reused by every matrix.
extension TrainableSet.Entry {
    /// A hidden-layer weight matrix: rank 2 and not an embedding table or LM head. Embeddings,
    /// heads, biases and norm gains take the optimizer's "other" update instead: Muon practice,
    /// and the released ZO-Muon's full-tuning failures come from treating them alike
    /// (ZO-FAMILY.md §4.8). By role, not by the released code's size(0) ≥ 10 000 rule, which would
    /// also exclude wide MLP matrices of large models.
    public var isHiddenMatrix: Bool {
        guard tensor.rank == 2 else { return false }
        // Tensors of no model role are an adapter's own: prompt tuning's embedding table is a table.
        guard let role = Architecture.role(of: name)?.role else { return !name.lowercased().contains("embed") }
        return ![.embed, .positions, .head].contains(role)
    }

    /// √max(1, rows/cols): the optional ZO-Muon scale for tall matrices.
    var tallScale: Float { Float(max(1, Double(tensor.shape[0]) / Double(tensor.shape[1])).squareRoot()) }
}

/// The Newton–Schulz workspace and one f32 matrix buffer (the direction being orthogonalised),
/// both sized for the largest hidden matrix of the set and reused for every matrix of every step.
/// Accounted under the ledger's `workspace` tag.
final class NSWorkspace: @unchecked Sendable {
    let workspace: Tensor
    let buffer: Tensor
    let polynomial: NewtonSchulz
    let steps: Int
    let bf16: Bool
    let backend: any Backend

    init(matrices: [TrainableSet.Entry], polynomial: NewtonSchulz, steps: Int, backend: any Backend) throws {
        let ws = matrices.map { newtonSchulzWorkspace(rows: $0.tensor.shape[0], cols: $0.tensor.shape[1]) }.max() ?? 1
        workspace = try backend.allocate([ws], tag: .workspace)
        buffer = try backend.allocate([matrices.map(\.tensor.count).max() ?? 1], tag: .workspace)
        self.polynomial = polynomial
        self.steps = steps
        // The released ZO-Muon runs NS in bf16; on a device with tensor cores so do we (the CPU is f32).
        bf16 = backend.device == .cuda
        self.backend = backend
    }

    /// The buffer viewed with e's shape.
    func direction(for e: TrainableSet.Entry) -> Tensor {
        Tensor(buffer: buffer.buffer, dtype: .f32, shape: e.tensor.shape)
    }

    /// out = NS(src).
    func orthogonalize(_ src: Tensor, into out: Tensor) {
        backend.newtonSchulz(out, from: src, polynomial, steps: steps, workspace: workspace, bf16: bf16)
    }

    var bytes: Int { workspace.bytes + buffer.bytes }

    /// GEMM FLOPs of one orthogonalisation of every matrix in `matrices`.
    static func flops(_ matrices: [TrainableSet.Entry], _ p: NewtonSchulz, steps: Int) -> Double {
        matrices.reduce(0) { $0 + Double(steps) * p.flopsPerIteration(rows: $1.tensor.shape[0], cols: $1.tensor.shape[1]) }
    }
}

/// Options of the matrix optimizers' non-matrix tensors, shared by ZO-Muon and Jaguar-Muon.
func checkMatrixOptions<O: ZOOptimizerOptions>(nsSteps: Int, otherLRRatio: Float, _ type: O.Type) throws {
    guard (1...100).contains(nsSteps) else { throw OptimizerOptionError(O.self, "ns_steps", "must be in 1…100 (got \(nsSteps))") }
    guard otherLRRatio >= 0 && otherLRRatio.isFinite else { throw OptimizerOptionError(O.self, "other_lr_ratio", "must be ≥ 0 (got \(otherLRRatio))") }
}
