import Foundation
import ZOTuneModels

// The movie-review snippets of Hutto & Gilbert (ICWSM 2014), shipped in the vaderSentiment sdist:
//   pip download --no-deps --no-binary :all: vaderSentiment
//   vaderSentiment-3.3.2.tar.gz → additional_resources/hutto_ICWSM_2014.tar.gz
//     → hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt
// 10,605 lines `id<TAB>mean score<TAB>sentence`, CRLF, UTF-8 (3.3.2; decoded per line with a
// Windows-1252 / Latin-1 fallback in case another copy is not). Label = sign of the score
// (1 positive, 0 negative), zero scores dropped (37 in 3.3.2); prompted with SST-2's template.

public let movieSnippetsFileName = "movieReviewSnippets_GroundTruth.txt"
let movieInnerArchiveName = "hutto_ICWSM_2014.tar.gz"

/// Parses the snippets file, or pulls it out of the sdist / inner archive first when `url` ends
/// in .tar.gz (nothing is written to disk).
func readMovieSnippets(_ url: URL) throws -> (examples: [PendingExample], notes: [String]) {
    let bytes: [UInt8]
    var notes: [String] = []
    if url.lastPathComponent.hasSuffix(".tar.gz") || url.lastPathComponent.hasSuffix(".tgz") {
        bytes = try movieSnippetsBytes(fromArchive: url)
        notes.append("movies: \(movieSnippetsFileName) read from \(url.lastPathComponent)")
    } else {
        bytes = try readFileBytes(url)
    }
    let (examples, zeros) = try parseMovieSnippets(bytes, path: url.path, name: movieSnippetsFileName)
    if zeros > 0 { notes.append("movies: dropped \(zeros) snippet(s) with mean score 0 (no sentiment sign)") }
    return (examples, notes)
}

func parseMovieSnippets(_ bytes: [UInt8], path: String, name: String) throws -> (examples: [PendingExample], zeros: Int) {
    var examples: [PendingExample] = [], zeros = 0
    for line in splitLines(bytes) where !isBlank(line.bytes) {
        let text = decodeText(line.bytes)
        let fields = text.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3 else {
            throw ModelError(file: path, field: "line \(line.number)",
                             "expected 3 tab-separated columns (id, mean score, sentence), found \(fields.count)")
        }
        let id = stripWhitespace(fields[0])
        let scoreText = stripWhitespace(fields[1])
        guard let score = Double(scoreText), score.isFinite else {
            throw ModelError(file: path, field: "line \(line.number): column 2 (mean score)", "expected a number, found \"\(scoreText)\"")
        }
        let sentence = String(fields[2])
        guard !stripWhitespace(sentence).isEmpty else {
            throw ModelError(file: path, field: "line \(line.number): column 3 (sentence)", "empty sentence")
        }
        if score == 0 { zeros += 1; continue }
        let exampleID = "\(name):\(id.isEmpty ? String(line.number) : id)", y = score > 0 ? 1 : 0
        examples.append(PendingExample(id: exampleID) {
            TaskExample(id: exampleID, candidates: MeZOTemplates.sst2(sentence: sentence), label: y)
        })
    }
    guard !examples.isEmpty else { throw ModelError(file: path, field: "file", "empty file: no snippets with a non-zero score") }
    return (examples, zeros)
}

// MARK: - Archives (tar via Foundation Process; GNU tar and bsdtar both take -t, -x, -O)

/// Runs tar with `arguments`; returns its stdout.
private func runTar(_ arguments: [String], archive: URL) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["tar"] + arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    do { try process.run() } catch {
        throw ModelError(file: archive.path, field: "tar", "cannot run tar: \(error.localizedDescription)")
    }
    // Drain stderr concurrently so a chatty tar cannot block on a full pipe.
    let errBox = ErrorTextBox()
    let errHandle = err.fileHandleForReading
    let errThread = Thread { errBox.set(errHandle.readDataToEndOfFile()) }
    errThread.start()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let message = errBox.wait()
    guard process.terminationStatus == 0 else {
        throw ModelError(file: archive.path, field: "tar \(arguments.first ?? "")",
                         "tar failed (status \(process.terminationStatus)): \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
    return [UInt8](data)
}

private final class ErrorTextBox: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var data = Data()
    func set(_ d: Data) { data = d; done.signal() }
    func wait() -> String { done.wait(); return String(decoding: data, as: UTF8.self) }
}

/// The archive member whose last path component is `name`.
private func member(named name: String, in archive: URL) throws -> String? {
    let listing = String(decoding: try runTar(["-tzf", archive.path], archive: archive), as: UTF8.self)
    return listing.split(whereSeparator: \.isNewline).map(String.init)
        .first { $0 == name || $0.hasSuffix("/" + name) }
}

/// The snippets file's bytes from the vaderSentiment sdist (which nests hutto_ICWSM_2014.tar.gz)
/// or from hutto_ICWSM_2014.tar.gz itself.
func movieSnippetsBytes(fromArchive archive: URL) throws -> [UInt8] {
    try requireFile(archive)
    if let m = try member(named: movieSnippetsFileName, in: archive) {
        return try runTar(["-xzOf", archive.path, m], archive: archive)
    }
    guard let inner = try member(named: movieInnerArchiveName, in: archive) else {
        throw ModelError(file: archive.path, field: "archive",
                         "contains neither \(movieSnippetsFileName) nor \(movieInnerArchiveName)")
    }
    let tmp = FileManager.default.temporaryDirectory
        .appendingPathComponent("zotune-movies-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: tmp) }
    let innerURL = tmp.appendingPathComponent(movieInnerArchiveName)
    try Data(try runTar(["-xzOf", archive.path, inner], archive: archive)).write(to: innerURL)
    guard let m = try member(named: movieSnippetsFileName, in: innerURL) else {
        throw ModelError(file: "\(archive.path) → \(inner)", field: "archive", "does not contain \(movieSnippetsFileName)")
    }
    return try runTar(["-xzOf", innerURL.path, m], archive: innerURL)
}

/// Extracts movieReviewSnippets_GroundTruth.txt from the vaderSentiment sdist (or from
/// hutto_ICWSM_2014.tar.gz) into `directory` (created if needed); returns the file's URL.
@discardableResult
public func extractMovieSnippets(from archive: URL, into directory: URL) throws -> URL {
    let bytes = try movieSnippetsBytes(fromArchive: archive)
    let target = directory.appendingPathComponent(movieSnippetsFileName)
    do {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(bytes).write(to: target, options: .atomic)
    } catch {
        throw ModelError(file: target.path, field: "file", "cannot write: \(error.localizedDescription)")
    }
    return target
}
