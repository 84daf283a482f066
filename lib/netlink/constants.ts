// Constants from <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>,
// <linux/if_addr.h>, <linux/neighbour.h> and <linux/if_bridge.h>.

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
export const RTM_NEWNEIGH = 28;
export const RTM_DELNEIGH = 29;
export const RTM_GETNEIGH = 30;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;

export const IFF_UP = 0x1;
export const IFF_LOOPBACK = 0x8;
export const IFF_PROMISC = 0x100;
export const IFF_LOWER_UP = 0x10000;

export const IFLA_ADDRESS = 1;
export const IFLA_BROADCAST = 2;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_LINK = 5;
export const IFLA_MASTER = 10;
export const IFLA_PROTINFO = 12;
export const IFLA_TXQLEN = 13;
export const IFLA_OPERSTATE = 16;
export const IFLA_LINKINFO = 18;
export const IFLA_NET_NS_PID = 19;
export const IFLA_AF_SPEC = 26;
export const IFLA_NET_NS_FD = 28;
export const IFLA_PROMISCUITY = 30;
export const IFLA_LINK_NETNSID = 37;

export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const IFLA_INFO_SLAVE_KIND = 4;
export const IFLA_INFO_SLAVE_DATA = 5;

export const VETH_INFO_PEER = 1;

export const IFLA_BR_STP_STATE = 5;
export const IFLA_BR_VLAN_FILTERING = 7;
export const IFLA_BR_VLAN_DEFAULT_PVID = 39;

export const IFLA_BRPORT_MODE = 4; // hairpin
export const IFLA_BRPORT_LEARNING = 8;
export const IFLA_BRPORT_ISOLATED = 33;

export const IFLA_VXLAN_ID = 1;
export const IFLA_VXLAN_GROUP = 2;
export const IFLA_VXLAN_LINK = 3;
export const IFLA_VXLAN_LOCAL = 4;
export const IFLA_VXLAN_TTL = 5;
export const IFLA_VXLAN_TOS = 6;
export const IFLA_VXLAN_LEARNING = 7;
export const IFLA_VXLAN_AGEING = 8;
export const IFLA_VXLAN_L2MISS = 13;
export const IFLA_VXLAN_L3MISS = 14;
export const IFLA_VXLAN_PORT = 15;
export const IFLA_VXLAN_GROUP6 = 16;
export const IFLA_VXLAN_LOCAL6 = 17;
export const IFLA_VXLAN_GBP = 23;

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_LABEL = 3;
export const IFA_BROADCAST = 4;
export const IFA_CACHEINFO = 6;
export const IFA_FLAGS = 8;
export const IFA_F_TEMPORARY = 0x01;
export const IFA_F_NODAD = 0x02;
export const IFA_F_DADFAILED = 0x08;
export const IFA_F_DEPRECATED = 0x20;
export const IFA_F_TENTATIVE = 0x40;
export const IFA_F_PERMANENT = 0x80;
export const IFA_F_NOPREFIXROUTE = 0x200;

export const RTA_DST = 1;
export const RTA_SRC = 2;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_PREFSRC = 7;
export const RTA_METRICS = 8;
export const RTA_MULTIPATH = 9;
export const RTA_TABLE = 15;
export const RTAX_MTU = 2;
export const RTAX_ADVMSS = 8;

export const RTN_UNICAST = 1;
export const RTN_LOCAL = 2;
export const RTN_BLACKHOLE = 6;
export const RTN_UNREACHABLE = 7;

export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;

export const RTPROT_UNSPEC = 0;
export const RTPROT_KERNEL = 2;
export const RTPROT_BOOT = 3;
export const RTPROT_STATIC = 4;

export const RT_TABLE_MAIN = 254;
export const RT_TABLE_LOCAL = 255;
export const RTNH_F_ONLINK = 0x4;

export const NDA_DST = 1;
export const NDA_LLADDR = 2;
export const NDA_VLAN = 5;
export const NDA_PORT = 6;
export const NDA_VNI = 7;
export const NDA_IFINDEX = 8;
export const NDA_MASTER = 9;

export const NUD_INCOMPLETE = 0x01;
export const NUD_REACHABLE = 0x02;
export const NUD_STALE = 0x04;
export const NUD_NOARP = 0x40;
export const NUD_PERMANENT = 0x80;
export const NTF_SELF = 0x02;
export const NTF_MASTER = 0x04;

export const RTNLGRP_LINK = 1;
export const RTNLGRP_NEIGH = 3;
export const RTNLGRP_IPV4_IFADDR = 5;
export const RTNLGRP_IPV4_ROUTE = 7;
export const RTNLGRP_IPV6_IFADDR = 9;
export const RTNLGRP_IPV6_ROUTE = 11;

export const IF_OPER = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'] as const;
export type OperState = (typeof IF_OPER)[number];

export const IFLA_BRIDGE_FLAGS = 0;
export const IFLA_BRIDGE_VLAN_INFO = 2;
export const BRIDGE_FLAGS_SELF = 2;
export const BRIDGE_VLAN_INFO_MASTER = 0x1;
export const BRIDGE_VLAN_INFO_PVID = 0x2;
export const BRIDGE_VLAN_INFO_UNTAGGED = 0x4;
export const BRIDGE_VLAN_INFO_RANGE_BEGIN = 0x8;
export const BRIDGE_VLAN_INFO_RANGE_END = 0x10;

// Generic netlink family "IPVS" (include/uapi/linux/ip_vs.h).
export const IPVS_GENL_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 0x1;

export const IPVS_CMD_NEW_SERVICE = 1;
export const IPVS_CMD_SET_SERVICE = 2;
export const IPVS_CMD_DEL_SERVICE = 3;
export const IPVS_CMD_GET_SERVICE = 4;
export const IPVS_CMD_NEW_DEST = 5;
export const IPVS_CMD_SET_DEST = 6;
export const IPVS_CMD_DEL_DEST = 7;
export const IPVS_CMD_GET_DEST = 8;
export const IPVS_CMD_SET_CONFIG = 12;
export const IPVS_CMD_GET_CONFIG = 13;
export const IPVS_CMD_SET_INFO = 14;
export const IPVS_CMD_GET_INFO = 15;
export const IPVS_CMD_ZERO = 16;
export const IPVS_CMD_FLUSH = 17;

export const IPVS_CMD_ATTR_SERVICE = 1;
export const IPVS_CMD_ATTR_DEST = 2;
export const IPVS_CMD_ATTR_TIMEOUT_TCP = 4;
export const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN = 5;
export const IPVS_CMD_ATTR_TIMEOUT_UDP = 6;

export const IPVS_SVC_ATTR_AF = 1;
export const IPVS_SVC_ATTR_PROTOCOL = 2;
export const IPVS_SVC_ATTR_ADDR = 3;
export const IPVS_SVC_ATTR_PORT = 4;
export const IPVS_SVC_ATTR_FWMARK = 5;
export const IPVS_SVC_ATTR_SCHED_NAME = 6;
export const IPVS_SVC_ATTR_FLAGS = 7;
export const IPVS_SVC_ATTR_TIMEOUT = 8;
export const IPVS_SVC_ATTR_NETMASK = 9;
export const IPVS_SVC_ATTR_STATS = 10;
export const IPVS_SVC_ATTR_PE_NAME = 11;
export const IPVS_SVC_ATTR_STATS64 = 12;

export const IPVS_DEST_ATTR_ADDR = 1;
export const IPVS_DEST_ATTR_PORT = 2;
export const IPVS_DEST_ATTR_FWD_METHOD = 3;
export const IPVS_DEST_ATTR_WEIGHT = 4;
export const IPVS_DEST_ATTR_U_THRESH = 5;
export const IPVS_DEST_ATTR_L_THRESH = 6;
export const IPVS_DEST_ATTR_ACTIVE_CONNS = 7;
export const IPVS_DEST_ATTR_INACT_CONNS = 8;
export const IPVS_DEST_ATTR_PERSIST_CONNS = 9;
export const IPVS_DEST_ATTR_STATS = 10;
export const IPVS_DEST_ATTR_ADDR_FAMILY = 11;
export const IPVS_DEST_ATTR_STATS64 = 12;
export const IPVS_DEST_ATTR_TUN_TYPE = 13;
export const IPVS_DEST_ATTR_TUN_PORT = 14;
export const IPVS_DEST_ATTR_TUN_FLAGS = 15;

export const IPVS_INFO_ATTR_VERSION = 1;
export const IPVS_INFO_ATTR_CONN_TAB_SIZE = 2;

/** IP_VS_CONN_F_FWD_MASK and its values. */
export const IP_VS_CONN_F_FWD_MASK = 0x7;
export const IP_VS_CONN_F_MASQ = 0;
export const IP_VS_CONN_F_LOCALNODE = 1;
export const IP_VS_CONN_F_TUNNEL = 2;
export const IP_VS_CONN_F_DROUTE = 3;
export const IP_VS_CONN_F_BYPASS = 4;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_SCTP = 132;
