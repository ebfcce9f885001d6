import Foundation
import ZOTuneBackend
import ZOTuneModels

/// What the matrix optimizers (ZO-Muon, Jaguar-Muon) need beyond the elementwise ones: which
/// tensors they orthogonalise, and one Newton–Schulz workspace reused by every group of matrices.
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

/// The Newton–Schulz workspace and one f32 batch buffer (the directions being orthogonalised),
/// reused for every group of every step and accounted under the ledger's `workspace` tag.
///
/// Hidden matrices of one shape are orthogonalised together: a group's directions are filled into
/// consecutive slots of the buffer and one batched NS call (one matrix's launches on a device)
/// orthogonalises them all. A group holds at most as many matrices as fit a budget of
/// `budgetFactor` × the largest hidden matrix's own needs, for the workspace and the buffer each,
/// so the memory is bounded whatever the model: 8× on a device, where NS is launch-bound and
/// batching is the lever; 1× on the CPU, whose batched entry is the per-matrix kernel on workspace
/// slices (no speed to buy with memory): its workspace and buffer stay those of the largest matrix,
/// and only shapes smaller than it are grouped. Groups are fixed by the set, so replay regroups alike.
final class NSWorkspace: @unchecked Sendable {
    /// Matrices of one shape orthogonalised by one batched call: indices into the set's entries.
    struct Group { let shape: [Int]; let entries: [Int] }

    let workspace: Tensor
    let buffer: Tensor
    let groups: [Group]
    let polynomial: NewtonSchulz
    let steps: Int
    let bf16: Bool
    let backend: any Backend

    static func budgetFactor(_ device: DeviceKind) -> Int { device == .cpu ? 1 : 8 }

    /// `entries`: the set's entries; only hidden matrices (`isHiddenMatrix`) are grouped.
    init(entries: [TrainableSet.Entry], polynomial: NewtonSchulz, steps: Int, backend: any Backend) throws {
        let matrices = entries.indices.filter { entries[$0].isHiddenMatrix }
        let ws = { (shape: [Int]) in newtonSchulzWorkspace(rows: shape[0], cols: shape[1]) }
        let factor = Self.budgetFactor(backend.device)
        let wsBudget = factor * (matrices.map { ws(entries[$0].tensor.shape) }.max() ?? 1)
        let bufBudget = factor * (matrices.map { entries[$0].tensor.count }.max() ?? 1)
        // Shapes in order of first appearance; each shape's matrices in set order, cut into groups.
        var order: [[Int]] = [], byShape: [[Int]: [Int]] = [:]
        for i in matrices {
            let shape = entries[i].tensor.shape
            if byShape[shape] == nil { order.append(shape) }
            byShape[shape, default: []].append(i)
        }
        var groups: [Group] = []
        for shape in order {
            let cap = max(1, min(wsBudget / ws(shape), bufBudget / shape.reduce(1, *)))
            let all = byShape[shape]!
            for start in stride(from: 0, to: all.count, by: cap) {
                groups.append(Group(shape: shape, entries: Array(all[start..<min(start + cap, all.count)])))
            }
        }
        self.groups = groups
        workspace = try backend.allocate([groups.map { $0.entries.count * ws($0.shape) }.max() ?? 1], tag: .workspace)
        buffer = try backend.allocate([groups.map { $0.entries.count * $0.shape.reduce(1, *) }.max() ?? 1], tag: .workspace)
        self.polynomial = polynomial
        self.steps = steps
        // The released ZO-Muon runs NS in bf16; on a device with tensor cores so do we (the CPU is f32).
        bf16 = backend.device == .cuda
        self.backend = backend
    }

    /// Slot k of the buffer viewed with the group's matrix shape.
    func slot(_ k: Int, of g: Group) -> Tensor {
        Tensor(buffer: buffer.buffer, dtype: .f32, shape: g.shape, offset: buffer.offset + k * g.shape.reduce(1, *))
    }

    /// NS of the group's filled slots, in place: one batched call.
    func orthogonalize(_ g: Group) {
        let batch = Tensor(buffer: buffer.buffer, dtype: .f32, shape: [g.entries.count] + g.shape, offset: buffer.offset)
        backend.newtonSchulzBatched(batch, from: batch, polynomial, steps: steps, workspace: workspace, bf16: bf16)
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
