#include "gateway/handshake_limiter.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace gwx::gateway {
namespace {

asio::ip::address ip(const char* text) {
  return asio::ip::make_address(text);
}

std::vector<handshake_slot> take(handshake_limiter& l, const char* address, std::size_t n) {
  std::vector<handshake_slot> out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(l.try_acquire(ip(address)));
    EXPECT_TRUE(out.back()) << address << ": place " << i + 1 << " refused";
  }
  return out;
}

TEST(HandshakeLimiter, RefusesTheAddressPastItsLimitAndLeavesNoEntryForARefusal) {
  auto l = handshake_limiter::create(3);
  auto held = take(*l, "192.0.2.1", 3);
  EXPECT_EQ(l->count(ip("192.0.2.1")), 3U);
  const auto refused = l->try_acquire(ip("192.0.2.1"));
  EXPECT_FALSE(refused);
  EXPECT_EQ(l->count(ip("192.0.2.1")), 3U);  // a refusal takes nothing
  EXPECT_EQ(l->addresses(), 1U);
}

TEST(HandshakeLimiter, AFinishedHandshakeGivesItsPlaceBackOnce) {
  auto l = handshake_limiter::create(2);
  auto held = take(*l, "192.0.2.1", 2);
  EXPECT_FALSE(l->try_acquire(ip("192.0.2.1")));
  held[0].release();  // the session opened
  EXPECT_FALSE(held[0]);
  EXPECT_EQ(l->count(ip("192.0.2.1")), 1U);
  held[0].release();  // and closes later: nothing more to give back
  EXPECT_EQ(l->count(ip("192.0.2.1")), 1U);
  auto again = l->try_acquire(ip("192.0.2.1"));
  EXPECT_TRUE(again);
  EXPECT_FALSE(l->try_acquire(ip("192.0.2.1")));
}

TEST(HandshakeLimiter, AClosedConnectionGivesItsPlaceBack) {
  auto l = handshake_limiter::create(1);
  {
    auto slot = l->try_acquire(ip("198.51.100.7"));
    ASSERT_TRUE(slot);
    EXPECT_FALSE(l->try_acquire(ip("198.51.100.7")));
  }  // the session (or the hand-over that never ran) is gone
  EXPECT_EQ(l->count(ip("198.51.100.7")), 0U);
  EXPECT_TRUE(l->try_acquire(ip("198.51.100.7")));
}

TEST(HandshakeLimiter, AMovedPlaceIsGivenBackOnceByItsLastHolder) {
  auto l = handshake_limiter::create(2);
  auto a = l->try_acquire(ip("192.0.2.9"));
  handshake_slot b(std::move(a));  // accept handler -> posted task -> session
  handshake_slot c;
  c = std::move(b);
  EXPECT_EQ(l->count(ip("192.0.2.9")), 1U);
  auto d = l->try_acquire(ip("192.0.2.9"));
  c = std::move(d);  // c's own place is given back as it takes d's
  EXPECT_EQ(l->count(ip("192.0.2.9")), 1U);
  c.release();
  EXPECT_EQ(l->count(ip("192.0.2.9")), 0U);
  EXPECT_EQ(l->addresses(), 0U);
}

TEST(HandshakeLimiter, AddressesAreCountedApart) {
  auto l = handshake_limiter::create(2);
  auto a = take(*l, "127.0.0.1", 2);
  EXPECT_FALSE(l->try_acquire(ip("127.0.0.1")));
  auto b = take(*l, "127.0.0.2", 2);
  auto v6 = take(*l, "2001:db8:0:1::1", 2);
  auto v6_next = take(*l, "2001:db8:0:2::1", 1);  // the next /64: another host
  EXPECT_FALSE(l->try_acquire(ip("2001:db8:0:1::1")));
  EXPECT_EQ(l->addresses(), 4U);
  EXPECT_EQ(l->count(ip("127.0.0.2")), 2U);
}

TEST(HandshakeLimiter, AnIpv4MappedAddressCountsAsItsIpv4Address) {
  auto l = handshake_limiter::create(2);
  auto v4 = l->try_acquire(ip("203.0.113.5"));
  auto mapped = l->try_acquire(ip("::ffff:203.0.113.5"));  // a dual-stack listener's view
  ASSERT_TRUE(v4);
  ASSERT_TRUE(mapped);
  EXPECT_FALSE(l->try_acquire(ip("203.0.113.5")));
  EXPECT_FALSE(l->try_acquire(ip("::ffff:203.0.113.5")));
  EXPECT_EQ(l->count(ip("203.0.113.5")), 2U);
  EXPECT_EQ(l->addresses(), 1U);
  // Not the same as the IPv4-compatible or any other IPv6 address.
  EXPECT_TRUE(l->try_acquire(ip("::203.0.113.5")));
  EXPECT_EQ(handshake_limiter::describe(ip("::ffff:203.0.113.5")), "203.0.113.5");
  EXPECT_EQ(handshake_limiter::describe(ip("2001:db8::1")), "2001:db8::/64");
  mapped.release();
  EXPECT_EQ(l->count(ip("203.0.113.5")), 1U);
}

// One IPv6 host is usually given a whole /64: its addresses share one count, or it could open
// as many unfinished handshakes as it has addresses.
TEST(HandshakeLimiter, IPv6AddressesCountByTheirSlash64) {
  auto l = handshake_limiter::create(3);
  auto a = take(*l, "2001:db8:1:2::1", 1);
  auto b = take(*l, "2001:db8:1:2:ffff:ffff:ffff:ffff", 1);
  auto c = take(*l, "2001:db8:1:2:abcd::7", 1);
  EXPECT_FALSE(l->try_acquire(ip("2001:db8:1:2::99")));
  EXPECT_EQ(l->count(ip("2001:db8:1:2::5")), 3U);
  EXPECT_EQ(l->addresses(), 1U);
  EXPECT_TRUE(l->try_acquire(ip("2001:db8:1:3::1")));  // another /64
  EXPECT_EQ(handshake_limiter::describe(ip("2001:db8:1:2:abcd::7")), "2001:db8:1:2::/64");
  b.clear();
  EXPECT_EQ(l->count(ip("2001:db8:1:2::1")), 2U);
  EXPECT_TRUE(l->try_acquire(ip("2001:db8:1:2::99")));
}

TEST(HandshakeLimiter, NoEntryIsLeftOnceEveryPlaceIsBack) {
  auto l = handshake_limiter::create(4);
  {
    std::vector<handshake_slot> all;
    for (int i = 0; i < 100; ++i) {
      const auto a = asio::ip::address_v4(0x0a000000U + static_cast<unsigned>(i % 50));
      all.push_back(l->try_acquire(a));
    }
    EXPECT_EQ(l->addresses(), 50U);
    for (std::size_t i = 0; i < 50; ++i) {
      all[i].release();
    }
    EXPECT_EQ(l->addresses(), 50U);  // each address still holds one
  }
  EXPECT_EQ(l->addresses(), 0U);
}

TEST(HandshakeLimiter, PlacesOutliveTheirListenersHandle) {
  // A hand-over still queued on a loop when the listener goes (shutdown) gives its place back
  // when it is destroyed: the limiter lives as long as a place does.
  auto l = handshake_limiter::create(1);
  auto slot = l->try_acquire(ip("192.0.2.1"));
  std::weak_ptr<handshake_limiter> weak = l;
  l.reset();
  EXPECT_FALSE(weak.expired());
  slot.release();
  EXPECT_TRUE(weak.expired());
}

TEST(HandshakeLimiter, TakenAndGivenBackFromSeveralThreads) {
  // Taken by the acceptor, given back on the connections' loops.
  auto l = handshake_limiter::create(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&l, t] {
      for (int i = 0; i < 2000; ++i) {
        const auto a = asio::ip::address_v4(0xc0000200U + static_cast<unsigned>((i + t) % 3));
        auto slot = l->try_acquire(a);
        if (slot && i % 2 == 0) {
          slot.release();
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(l->addresses(), 0U);
}

TEST(HandshakeLimiter, ZeroIsNotALimit) {
  EXPECT_THROW(handshake_limiter::create(0), std::invalid_argument);
}

}  // namespace
}  // namespace gwx::gateway
