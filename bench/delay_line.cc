// A userspace delay line for bench/netns_mpi.sh, for kernels without the
// netem qdisc: it binds one nfnetlink_queue queue (packets sent there by an
// iptables NFQUEUE rule) and lets every packet go (NF_ACCEPT) exactly
// --delay_ms after it arrived, in arrival order.
//
//   iptables-legacy -t mangle -A POSTROUTING -o veth0 -j NFQUEUE --queue-num 3
//   delay_line --queue=3 --delay_ms=2
//
// It talks nfnetlink_queue over a raw NETLINK_NETFILTER socket (no
// libnetfilter_queue): the queue is bound with copy mode NFQNL_COPY_META
// (only the packet id and metadata come up, no payload: we only issue
// verdicts), a maximum length of 65536 packets so that the kernel does not
// drop, and NFQA_CFG_F_GSO so that GSO packets (up to 64 KiB over veth) are
// queued whole instead of segmented, which keeps the packet rate low. There
// is no fail-open: while the queue is full or the program is stopped,
// packets are dropped, never let through undelayed.
//
// Timing: the arrival time is CLOCK_MONOTONIC when the packet's message is
// read; the due times go into a FIFO (one delay for every packet, so the
// FIFO is sorted), and ppoll() sleeps until the head is due or the socket
// has more (timer slack 1 us). On SIGTERM or SIGINT it accepts what it still
// holds, unbinds the queue and exits 0; its counters go to stderr. It
// writes no files. Linux only; needs root (CAP_NET_ADMIN).

// <netinet/in.h> (through <arpa/inet.h>) before the <linux/...> headers,
// which then leave its definitions alone.
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <string>

namespace {

constexpr int64_t kNsPerMs = 1000000;
constexpr uint32_t kQueueMaxLen = 65536;
constexpr int kRcvBuf = 16 << 20;

[[noreturn]] void Fail(const std::string& message) {
  fprintf(stderr, "delay_line: %s\n", message.c_str());
  exit(1);
}

[[noreturn]] void Usage(const std::string& message) {
  fprintf(stderr,
          "delay_line: %s\n"
          "usage: delay_line --queue=N --delay_ms=D\n"
          "  --queue=N     the nfnetlink_queue number, 0..65535\n"
          "  --delay_ms=D  the delay, 0..1000 ms with up to 3 decimals\n",
          message.c_str());
  exit(2);
}

int64_t NowNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// "0".."65535" without leading zeros; -1 otherwise.
int ParseQueue(const std::string& s) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return -1;
  int value = 0;
  for (char c : s) {
    if (!IsDigit(c)) return -1;
    value = value * 10 + (c - '0');
  }
  return value <= 65535 ? value : -1;
}

// "<int>[.<1-3 digits>]" in [0, 1000] ms, without leading zeros, in ns;
// -1 otherwise.
int64_t ParseDelayNs(const std::string& s) {
  const size_t dot = s.find('.');
  const std::string whole = s.substr(0, dot);
  const std::string frac = dot == std::string::npos ? "" : s.substr(dot + 1);
  if (whole.empty() || whole.size() > 4 ||
      (whole.size() > 1 && whole[0] == '0'))
    return -1;
  if (dot != std::string::npos && (frac.empty() || frac.size() > 3)) return -1;
  int64_t ms = 0, us = 0;
  for (char c : whole) {
    if (!IsDigit(c)) return -1;
    ms = ms * 10 + (c - '0');
  }
  for (size_t i = 0; i < 3; ++i) {
    const char c = i < frac.size() ? frac[i] : '0';
    if (!IsDigit(c)) return -1;
    us = us * 10 + (c - '0');
  }
  const int64_t ns = ms * kNsPerMs + us * 1000;
  return ns <= 1000 * kNsPerMs ? ns : -1;
}

// A netlink message being built: header, nfgenmsg, then attributes.
class Message {
 public:
  Message(uint16_t type, uint16_t flags, uint16_t queue) {
    nlmsghdr* h = Header();
    h->nlmsg_len = NLMSG_LENGTH(sizeof(nfgenmsg));
    h->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | type;
    h->nlmsg_flags = NLM_F_REQUEST | flags;
    h->nlmsg_seq = ++sequence_;
    nfgenmsg* g = static_cast<nfgenmsg*>(NLMSG_DATA(h));
    g->nfgen_family = AF_UNSPEC;
    g->version = NFNETLINK_V0;
    g->res_id = htons(queue);
  }
  void Put(uint16_t type, const void* data, size_t size) {
    nlmsghdr* h = Header();
    nlattr* a = reinterpret_cast<nlattr*>(buffer_ + NLMSG_ALIGN(h->nlmsg_len));
    a->nla_type = type;
    a->nla_len = NLA_HDRLEN + size;
    memcpy(reinterpret_cast<char*>(a) + NLA_HDRLEN, data, size);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + NLA_ALIGN(a->nla_len);
  }
  void PutBe32(uint16_t type, uint32_t value) {
    const uint32_t be = htonl(value);
    Put(type, &be, sizeof(be));
  }
  nlmsghdr* Header() { return reinterpret_cast<nlmsghdr*>(buffer_); }
  uint32_t sequence() { return Header()->nlmsg_seq; }

 private:
  static uint32_t sequence_;
  alignas(NLMSG_ALIGNTO) char buffer_[256] = {};
};
uint32_t Message::sequence_ = 0;

sockaddr_nl KernelAddress() {
  sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  return kernel;
}

bool Send(int fd, Message& m) {
  sockaddr_nl kernel = KernelAddress();
  const ssize_t n =
      sendto(fd, m.Header(), m.Header()->nlmsg_len, 0,
             reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
  return n == static_cast<ssize_t>(m.Header()->nlmsg_len);
}

// Sends a configuration message with NLM_F_ACK and waits for its answer:
// 0, or the kernel's errno.
int Configure(int fd, Message& m) {
  if (!Send(fd, m)) return errno;
  alignas(NLMSG_ALIGNTO) char buffer[8192];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    int size = static_cast<int>(n);
    for (nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(h, size);
         h = NLMSG_NEXT(h, size)) {
      if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == m.sequence()) {
        const nlmsgerr* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        return -e->error;
      }
    }
  }
}

struct Held {
  uint32_t id;
  int64_t due_ns;
};

}  // namespace

int main(int argc, char** argv) {
  int queue = -1;
  int64_t delay_ns = -1;
  std::string delay_text;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--queue=", 0) == 0) {
      queue = ParseQueue(arg.substr(8));
      if (queue < 0) Usage("--queue: an integer in 0..65535");
    } else if (arg.rfind("--delay_ms=", 0) == 0) {
      delay_text = arg.substr(11);
      delay_ns = ParseDelayNs(delay_text);
      if (delay_ns < 0)
        Usage("--delay_ms: a number of ms in 0..1000, up to 3 decimals");
    } else {
      Usage("unknown argument");
    }
  }
  if (queue < 0 || delay_ns < 0) Usage("--queue and --delay_ms are required");

  // SIGTERM and SIGINT arrive through a signalfd, polled with the socket.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  if (sigprocmask(SIG_BLOCK, &signals, nullptr) != 0)
    Fail(std::string("sigprocmask: ") + strerror(errno));
  const int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  if (signal_fd < 0) Fail(std::string("signalfd: ") + strerror(errno));
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);  // 1 us, not the default 50 us

  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0)
    Fail(std::string("cannot open a NETLINK_NETFILTER socket: ") +
         strerror(errno) + " (needs nfnetlink)");
  // A deep receive buffer (the kernel drops a packet whose message does not
  // fit), and no ENOBUFS errors: a drop is counted by TCP, not by us.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kRcvBuf, sizeof(kRcvBuf)) !=
      0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kRcvBuf, sizeof(kRcvBuf));
  const int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
  sockaddr_nl local = {};
  local.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0)
    Fail(std::string("cannot bind the netlink socket: ") + strerror(errno));

  {
    Message bind_queue(NFQNL_MSG_CONFIG, NLM_F_ACK, queue);
    nfqnl_msg_config_cmd command = {};
    command.command = NFQNL_CFG_CMD_BIND;
    command.pf = htons(AF_INET);
    bind_queue.Put(NFQA_CFG_CMD, &command, sizeof(command));
    if (const int error = Configure(fd, bind_queue))
      Fail("cannot bind queue " + std::to_string(queue) + ": " +
           strerror(error) + " (needs root and nfnetlink_queue)");
    Message params(NFQNL_MSG_CONFIG, NLM_F_ACK, queue);
    nfqnl_msg_config_params copy = {};
    copy.copy_range = htonl(0);
    copy.copy_mode = NFQNL_COPY_META;
    params.Put(NFQA_CFG_PARAMS, &copy, sizeof(copy));
    params.PutBe32(NFQA_CFG_QUEUE_MAXLEN, kQueueMaxLen);
    params.PutBe32(NFQA_CFG_MASK, NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN);
    params.PutBe32(NFQA_CFG_FLAGS, NFQA_CFG_F_GSO);  // fail-open stays off
    if (const int error = Configure(fd, params))
      Fail("cannot configure queue " + std::to_string(queue) + ": " +
           strerror(error));
  }
  fprintf(stderr, "delay_line: queue %d, delay %s ms, pid %d\n", queue,
          delay_text.c_str(), static_cast<int>(getpid()));

  std::deque<Held> held;
  uint64_t packets = 0, verdict_errors = 0;
  size_t most_held = 0;
  const auto accept = [&](uint32_t id) {
    Message verdict(NFQNL_MSG_VERDICT, 0, queue);
    nfqnl_msg_verdict_hdr v = {};
    v.verdict = htonl(NF_ACCEPT);
    v.id = htonl(id);
    verdict.Put(NFQA_VERDICT_HDR, &v, sizeof(v));
    if (!Send(fd, verdict)) ++verdict_errors;
  };
  alignas(NLMSG_ALIGNTO) static char buffer[1 << 16];
  bool stop = false;
  while (!stop) {
    // Let go of what is due.
    int64_t now = NowNs();
    while (!held.empty() && held.front().due_ns <= now) {
      accept(held.front().id);
      held.pop_front();
    }
    timespec timeout, *wait = nullptr;
    if (!held.empty()) {
      const int64_t left = held.front().due_ns - now;
      timeout.tv_sec = left / 1000000000;
      timeout.tv_nsec = left % 1000000000;
      wait = &timeout;
    }
    pollfd fds[2] = {{fd, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    const int ready = ppoll(fds, 2, wait, nullptr);
    if (ready < 0) {
      if (errno == EINTR) continue;
      Fail(std::string("ppoll: ") + strerror(errno));
    }
    if (fds[1].revents & POLLIN) stop = true;
    if (!(fds[0].revents & (POLLIN | POLLERR))) continue;
    // Read every message waiting; each is one packet.
    for (;;) {
      const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) break;
        Fail(std::string("recv: ") + strerror(errno));
      }
      const int64_t arrived = NowNs();
      int size = static_cast<int>(n);
      for (nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(h, size);
           h = NLMSG_NEXT(h, size)) {
        if (h->nlmsg_type == NLMSG_ERROR) {
          const nlmsgerr* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
          if (e->error != 0) ++verdict_errors;
          continue;
        }
        if (h->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET))
          continue;
        int attributes = h->nlmsg_len - NLMSG_LENGTH(sizeof(nfgenmsg));
        nlattr* a = reinterpret_cast<nlattr*>(
            static_cast<char*>(NLMSG_DATA(h)) + NLMSG_ALIGN(sizeof(nfgenmsg)));
        while (attributes >= static_cast<int>(NLA_HDRLEN) &&
               a->nla_len >= NLA_HDRLEN && a->nla_len <= attributes) {
          if ((a->nla_type & NLA_TYPE_MASK) == NFQA_PACKET_HDR &&
              a->nla_len >= NLA_HDRLEN + sizeof(nfqnl_msg_packet_hdr)) {
            nfqnl_msg_packet_hdr header;
            memcpy(&header, reinterpret_cast<char*>(a) + NLA_HDRLEN,
                   sizeof(header));
            held.push_back({ntohl(header.packet_id), arrived + delay_ns});
            ++packets;
            break;
          }
          attributes -= NLA_ALIGN(a->nla_len);
          a = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(a) +
                                        NLA_ALIGN(a->nla_len));
        }
      }
    }
    if (held.size() > most_held) most_held = held.size();
  }

  // Stopped: what is held goes now (not dropped), then the queue is unbound.
  for (const Held& h : held) accept(h.id);
  Message unbind(NFQNL_MSG_CONFIG, 0, queue);
  nfqnl_msg_config_cmd command = {};
  command.command = NFQNL_CFG_CMD_UNBIND;
  unbind.Put(NFQA_CFG_CMD, &command, sizeof(command));
  Send(fd, unbind);
  close(fd);
  fprintf(stderr,
          "delay_line: queue %d: %llu packets delayed, at most %zu held at "
          "once, %llu verdict errors\n",
          queue, static_cast<unsigned long long>(packets), most_held,
          static_cast<unsigned long long>(verdict_errors));
  return 0;
}
