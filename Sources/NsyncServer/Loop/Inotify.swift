#if canImport(Glibc)
import Glibc
#endif
import CLibUV // <sys/inotify.h>

/// inotify event bits as a Swift option set (values from <sys/inotify.h>).
public struct InotifyMask: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    private init(_ value: Int32) { self.rawValue = UInt32(bitPattern: value) }
    private init(_ value: UInt32) { self.rawValue = value }

    public static let modify = InotifyMask(IN_MODIFY)
    public static let attrib = InotifyMask(IN_ATTRIB)
    public static let closeWrite = InotifyMask(IN_CLOSE_WRITE)
    public static let movedFrom = InotifyMask(IN_MOVED_FROM)
    public static let movedTo = InotifyMask(IN_MOVED_TO)
    public static let create = InotifyMask(IN_CREATE)
    public static let delete = InotifyMask(IN_DELETE)
    public static let deleteSelf = InotifyMask(IN_DELETE_SELF)
    public static let moveSelf = InotifyMask(IN_MOVE_SELF)
    // Set by the kernel only.
    public static let unmount = InotifyMask(IN_UNMOUNT)
    public static let queueOverflow = InotifyMask(IN_Q_OVERFLOW)
    public static let ignored = InotifyMask(IN_IGNORED)
    public static let isDirectory = InotifyMask(IN_ISDIR)
    // Flags for inotify_add_watch only.
    public static let onlyDirectory = InotifyMask(IN_ONLYDIR)
    public static let dontFollow = InotifyMask(IN_DONT_FOLLOW)
    public static let excludeUnlinked = InotifyMask(IN_EXCL_UNLINK)

    public var description: String {
        let names: [(InotifyMask, String)] = [
            (.modify, "MODIFY"), (.attrib, "ATTRIB"), (.closeWrite, "CLOSE_WRITE"),
            (.movedFrom, "MOVED_FROM"), (.movedTo, "MOVED_TO"), (.create, "CREATE"),
            (.delete, "DELETE"), (.deleteSelf, "DELETE_SELF"), (.moveSelf, "MOVE_SELF"),
            (.unmount, "UNMOUNT"), (.queueOverflow, "Q_OVERFLOW"), (.ignored, "IGNORED"),
            (.isDirectory, "ISDIR"),
        ]
        let set = names.filter { contains($0.0) }.map(\.1)
        return set.isEmpty ? "0x" + String(rawValue, radix: 16) : set.joined(separator: "|")
    }
}

/// One decoded `struct inotify_event`. Immutable value.
public struct InotifyEvent: Equatable, Sendable {
    /// The watch descriptor; -1 for a queue overflow.
    public var watch: Int32
    public var mask: InotifyMask
    /// Pairs the IN_MOVED_FROM and IN_MOVED_TO halves of one rename.
    public var cookie: UInt32
    /// The entry's name inside the watched directory, without padding; empty
    /// for events about the watched directory itself.
    public var name: [UInt8]

    public init(watch: Int32, mask: InotifyMask, cookie: UInt32 = 0, name: [UInt8] = []) {
        self.watch = watch
        self.mask = mask
        self.cookie = cookie
        self.name = name
    }

    /// The name as text, nil when it is not valid UTF-8.
    public var nameText: String? { String(validating: name, as: UTF8.self) }

    /// The kernel's encoding (native byte order), for tests of the parser.
    public func encoded(padTo alignment: Int = 16) -> [UInt8] {
        let padded = name.isEmpty ? 0 : (name.count + 1 + alignment - 1) / alignment * alignment
        var bytes = [UInt8]()
        withUnsafeBytes(of: watch) { bytes += $0 }
        withUnsafeBytes(of: mask.rawValue) { bytes += $0 }
        withUnsafeBytes(of: cookie) { bytes += $0 }
        withUnsafeBytes(of: UInt32(padded)) { bytes += $0 }
        bytes += name
        bytes += [UInt8](repeating: 0, count: padded - name.count)
        return bytes
    }
}

/// Decodes the byte stream read from an inotify descriptor. Pure; any thread.
/// Trusts no length: a truncated or inconsistent record ends the parse and is
/// counted in `malformedBytes` instead of being read past.
public enum InotifyEventParser {
    static let headerSize = 16

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> (events: [InotifyEvent], malformedBytes: Int) {
        var events: [InotifyEvent] = []
        var offset = 0
        while bytes.count - offset >= headerSize {
            let watch = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let cookie = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            guard length <= bytes.count - offset - headerSize else { break }
            let nameStart = offset + headerSize
            let field = bytes[nameStart..<(nameStart + length)]
            let nameEnd = field.firstIndex(of: 0) ?? field.endIndex
            events.append(InotifyEvent(watch: watch, mask: InotifyMask(rawValue: mask), cookie: cookie,
                                       name: Array(bytes[nameStart..<nameEnd])))
            offset = nameStart + length
        }
        return (events, bytes.count - offset)
    }

    public static func parse(_ bytes: [UInt8]) -> (events: [InotifyEvent], malformedBytes: Int) {
        bytes.withUnsafeBytes { parse($0) }
    }
}

/// An inotify instance: owns the non-blocking descriptor (closed in deinit)
/// and a read buffer. Used on the loop thread, which polls `fd` for
/// readability and then calls `readEvents()` until it returns nothing.
public final class Inotify {
    public private(set) var fd: Int32
    private let buffer: UnsafeMutableRawBufferPointer
    private static let bufferSize = 64 * 1024

    public init() throws {
        fd = try valueOrErrno("inotify_init1") { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) }
        buffer = .allocate(byteCount: Inotify.bufferSize, alignment: 8)
    }

    deinit {
        close()
        buffer.deallocate()
    }

    public func close() {
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
    }

    /// Adds (or updates) a watch and returns its descriptor. ENOSPC here means
    /// the fs.inotify.max_user_watches limit (`SystemError.isNoSpace`).
    public func addWatch(_ path: String, mask: InotifyMask) throws -> Int32 {
        try valueOrErrno("inotify_add_watch", path: path) { inotify_add_watch(fd, path, mask.rawValue) }
    }

    /// Removes a watch; a watch the kernel already dropped (its directory was
    /// deleted) is not an error.
    public func removeWatch(_ watch: Int32) {
        _ = inotify_rm_watch(fd, watch)
    }

    /// Reads what is queued now; empty when nothing is (EAGAIN).
    public func readEvents() throws -> [InotifyEvent] {
        while true {
            let count = read(fd, buffer.baseAddress, buffer.count)
            if count > 0 {
                // The kernel only returns whole events, so a malformed tail
                // would be a kernel bug; the parser still refuses to overrun.
                return InotifyEventParser.parse(UnsafeRawBufferPointer(rebasing: buffer[..<count])).events
            }
            if count == 0 { return [] }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return [] }
            throw SystemError(errno: error, operation: "read inotify")
        }
    }
}

extension Inotify {
    /// A limit from /proc/sys/fs/inotify (`max_user_watches`,
    /// `max_queued_events`), for messages that tell the operator what to raise.
    public static func kernelLimit(_ name: String) -> Int? {
        let path = "/proc/sys/fs/inotify/" + name
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = Glibc.close(fd) }
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let text = String(decoding: bytes[..<count], as: UTF8.self)
        return Int(text.filter { $0.isNumber })
    }
}
