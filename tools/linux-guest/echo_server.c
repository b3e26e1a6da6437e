/*
 * The Linux reference guest's TCP echo server (RFC 862) on port 7, built by
 * `tools/src/linux_guest.rs` with `gcc -static -O2` and started by the
 * guest's /init.
 *
 * The same shape as Tenfold's event-loop server, so the comparison is about
 * the kernels: one thread, one edge-triggered epoll set, TCP_NODELAY and
 * 16 KiB SO_RCVBUF/SO_SNDBUF per connection, and a 16 KiB buffer per
 * connection that is written back in full before the next read (a client
 * that stops reading closes its own window; the server's memory stays
 * bounded).
 *
 * Once it listens, the server forks into the background and the parent
 * exits 0, so /init can print its ready marker right after it returns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define ECHO_PORT 7
#define SOCKET_BUFFER_BYTES (16 * 1024)
#define CONNECTION_BUFFER_BYTES (16 * 1024)
#define LISTEN_BACKLOG 1024
#define MAX_EVENTS 256

struct connection {
	int fd;
	/* Bytes [sent, filled) of `buffer` still owe the client an echo. */
	size_t filled;
	size_t sent;
	unsigned char buffer[CONNECTION_BUFFER_BYTES];
};

/* The listening socket's epoll tag; connections are tagged with their struct. */
static int listener_tag;

static void fail(const char *what)
{
	fprintf(stderr, "echo_server: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void set_socket_option(int fd, int level, int name, int value, const char *what)
{
	if (setsockopt(fd, level, name, &value, sizeof value) != 0)
		fail(what);
}

static void close_connection(struct connection *connection)
{
	/* Closing the fd also removes it from the epoll set. */
	close(connection->fd);
	free(connection);
}

/*
 * Moves as much as the socket takes right now: echo what is pending, then
 * read more, until the kernel says EAGAIN (edge-triggered: the next event
 * comes only after that). Returns 0 to keep the connection, -1 when it is
 * finished (EOF after the last echo, or an error).
 */
static int serve(struct connection *connection)
{
	for (;;) {
		while (connection->sent < connection->filled) {
			ssize_t count = send(connection->fd, connection->buffer + connection->sent,
					     connection->filled - connection->sent, MSG_NOSIGNAL);
			if (count < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					return 0; /* EPOLLOUT will resume us */
				if (errno == EINTR)
					continue;
				return -1;
			}
			connection->sent += (size_t)count;
		}
		connection->sent = connection->filled = 0;
		ssize_t count = recv(connection->fd, connection->buffer, sizeof connection->buffer, 0);
		if (count > 0) {
			connection->filled = (size_t)count;
			continue;
		}
		if (count == 0)
			return -1; /* the client's FIN, everything echoed */
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0; /* EPOLLIN will resume us */
		if (errno == EINTR)
			continue;
		return -1;
	}
}

static void accept_all(int epoll_fd, int listener)
{
	for (;;) {
		int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fprintf(stderr, "echo_server: accept: %s\n", strerror(errno));
			return;
		}
		set_socket_option(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
		set_socket_option(fd, SOL_SOCKET, SO_RCVBUF, SOCKET_BUFFER_BYTES, "SO_RCVBUF");
		set_socket_option(fd, SOL_SOCKET, SO_SNDBUF, SOCKET_BUFFER_BYTES, "SO_SNDBUF");
		struct connection *connection = malloc(sizeof *connection);
		if (connection == NULL) {
			close(fd); /* out of memory: refuse this one, keep serving */
			continue;
		}
		connection->fd = fd;
		connection->filled = connection->sent = 0;
		struct epoll_event event = {
			.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
			.data.ptr = connection,
		};
		if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
			close_connection(connection);
			continue;
		}
		/* Data may have arrived before registration. */
		if (serve(connection) != 0)
			close_connection(connection);
	}
}

int main(void)
{
	int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listener < 0)
		fail("socket");
	set_socket_option(listener, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	/* Set before listen() too, so the window advertised in the SYN-ACK
	 * already reflects the per-connection buffer size. */
	set_socket_option(listener, SOL_SOCKET, SO_RCVBUF, SOCKET_BUFFER_BYTES, "SO_RCVBUF");
	set_socket_option(listener, SOL_SOCKET, SO_SNDBUF, SOCKET_BUFFER_BYTES, "SO_SNDBUF");
	struct sockaddr_in address = {
		.sin_family = AF_INET,
		.sin_port = htons(ECHO_PORT),
		.sin_addr.s_addr = htonl(INADDR_ANY),
	};
	if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0)
		fail("bind");
	if (listen(listener, LISTEN_BACKLOG) != 0)
		fail("listen");

	pid_t child = fork();
	if (child < 0)
		fail("fork");
	if (child > 0)
		return 0; /* listening: the caller may go on */

	int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (epoll_fd < 0)
		fail("epoll_create1");
	struct epoll_event event = { .events = EPOLLIN | EPOLLET, .data.ptr = &listener_tag };
	if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &event) != 0)
		fail("epoll_ctl(listener)");

	struct epoll_event events[MAX_EVENTS];
	for (;;) {
		int ready = epoll_wait(epoll_fd, events, MAX_EVENTS, -1);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			fail("epoll_wait");
		}
		for (int i = 0; i < ready; i++) {
			if (events[i].data.ptr == &listener_tag) {
				accept_all(epoll_fd, listener);
				continue;
			}
			struct connection *connection = events[i].data.ptr;
			/* EPOLLHUP/EPOLLERR: serve() sees the error or EOF itself. */
			if (serve(connection) != 0)
				close_connection(connection);
		}
	}
}
