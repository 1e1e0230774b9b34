/// The shared page's layout: `struct vchan_interface` from Xen's `xen/io/libxenvchan.h`, byte for byte.
/// `VchanLayoutTests` compares every offset with the C header's `offsetof`.
///
/// ```
/// 0  left.cons   u32   client writes left, server reads it
/// 4  left.prod   u32
/// 8  right.cons  u32   server writes right, client reads it
/// 12 right.prod  u32
/// 16 left_order  u16   10: at offset 1024 of this page; 11: at 2048; 12+: 2^(order-12) granted pages
/// 18 right_order u16
/// 20 cli_live    u8    0 exited, 1 connected, 2 not yet connected
/// 21 srv_live    u8
/// 22 cli_notify  u8    bits the server sets to ask the client for an event (1 on write, 2 on read)
/// 23 srv_notify  u8    bits the client sets to ask the server for an event
/// 24 grants[]    u32   left's pages, then right's
/// ```
public enum VchanInterface {
    public static let leftCons = 0
    public static let leftProd = 4
    public static let rightCons = 8
    public static let rightProd = 12
    public static let leftOrder = 16
    public static let rightOrder = 18
    public static let clientLive = 20
    public static let serverLive = 21
    public static let clientNotify = 22
    public static let serverNotify = 23
    public static let grants = 24
    /// `sizeof(struct vchan_interface)`, the grant list excluded.
    public static let headerSize = 24

    /// `VCHAN_NOTIFY_WRITE`: signal me when you write.
    public static let notifyWrite: UInt8 = 1
    /// `VCHAN_NOTIFY_READ`: signal me when you read.
    public static let notifyRead: UInt8 = 2

    public static let pageSize = 4096
    public static let pageShift = 12
    public static let smallOrder = 10
    public static let smallRingOffset = 1024
    public static let largeOrder = 11
    public static let largeRingOffset = 2048
    /// 1 MiB, libxenvchan's `MAX_RING_SHIFT`.
    public static let maxOrder = 20
}
