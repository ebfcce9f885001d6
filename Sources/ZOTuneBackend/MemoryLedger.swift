import Foundation
import Synchronization

/// What an allocation is for (ALGORITHMS.md §8). Every device allocation carries one.
public enum MemoryTag: String, Sendable, CaseIterable, Comparable {
    case weights
    case trainableState = "trainable-state"
    case activations
    case workspace
    case scratch
    case optimizer

    public static func < (a: MemoryTag, b: MemoryTag) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// Current and peak bytes per tag, and the peak of the total (which is not the sum of per-tag
/// peaks: tags peak at different times). Thread-safe.
public final class MemoryLedger: Sendable {
    public struct Usage: Sendable, Equatable {
        public var current: Int
        public var peak: Int
        public init(current: Int = 0, peak: Int = 0) {
            self.current = current
            self.peak = peak
        }
    }

    public struct Snapshot: Sendable, Equatable {
        public var byTag: [MemoryTag: Usage]
        public var total: Usage
        public func usage(_ tag: MemoryTag) -> Usage { byTag[tag] ?? Usage() }
    }

    private struct State {
        var byTag: [MemoryTag: Usage] = [:]
        var total = Usage()
    }

    private let state = Mutex(State())
    public let name: String

    public init(name: String) { self.name = name }

    public func allocated(_ bytes: Int, tag: MemoryTag) {
        state.withLock { s in
            var u = s.byTag[tag] ?? Usage()
            u.current += bytes
            u.peak = max(u.peak, u.current)
            s.byTag[tag] = u
            s.total.current += bytes
            s.total.peak = max(s.total.peak, s.total.current)
        }
    }

    public func freed(_ bytes: Int, tag: MemoryTag) {
        state.withLock { s in
            s.byTag[tag, default: Usage()].current -= bytes
            s.total.current -= bytes
        }
    }

    /// Starts a new measurement window: peaks drop to the current values.
    public func resetPeaks() {
        state.withLock { s in
            for (tag, u) in s.byTag { s.byTag[tag]!.peak = u.current }
            s.total.peak = s.total.current
        }
    }

    public var snapshot: Snapshot {
        state.withLock { s in Snapshot(byTag: s.byTag, total: s.total) }
    }

    /// A fixed-width table of current and peak bytes per tag.
    public func table(title: String? = nil) -> String {
        let snap = snapshot
        var lines = ["\(title ?? "memory (\(name))")"]
        lines.append(pad("tag", 18) + pad("current", 12, right: true) + pad("peak", 12, right: true))
        for tag in MemoryTag.allCases {
            let u = snap.usage(tag)
            lines.append(pad(tag.rawValue, 18) + pad(formatBytes(u.current), 12, right: true)
                         + pad(formatBytes(u.peak), 12, right: true))
        }
        lines.append(pad("total", 18) + pad(formatBytes(snap.total.current), 12, right: true)
                     + pad(formatBytes(snap.total.peak), 12, right: true))
        return lines.joined(separator: "\n")
    }
}

/// Human-readable bytes in binary units ("1.50 MiB").
public func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while abs(value) >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.2f %@", value, units[unit])
}

func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - s.count))
    return right ? fill + s : s + fill
}
