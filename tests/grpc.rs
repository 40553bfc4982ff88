//! gRPC through the proxy: a tonic server (h2c) behind it, a tonic client
//! (h2c, prior knowledge) in front, and a raw `h2` client to see the wire.
//! A unary call, a server-streaming call and a failing call, with their
//! trailers (`grpc-status`, `grpc-message`) carried end to end.
//!
//! The service is written by hand (what `tonic-build` would generate), with
//! `prost::Message` derives, so no `protoc` is needed.

#![allow(clippy::unwrap_used)]
// tonic::Status is large, and the service signatures are tonic's
#![allow(clippy::result_large_err)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::Stream;
use prost::Message;
use proxy_facade::upstreams::peer::{HttpPeer, ALPN};
use support::h2_proxy::H2Proxy;
use tonic::codegen::{BoxFuture, Service, StdError};

#[derive(Clone, PartialEq, prost::Message)]
struct EchoRequest {
    #[prost(string, tag = "1")]
    message: String,
    #[prost(uint32, tag = "2")]
    count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EchoReply {
    #[prost(string, tag = "1")]
    message: String,
}

const UNARY: &str = "/test.Echo/Unary";
const COUNT: &str = "/test.Echo/Count";
const FAIL: &str = "/test.Echo/Fail";

/// `Unary` echoes the message; `Fail` answers INVALID_ARGUMENT; both add
/// the response metadata `x-origin: tonic`.
struct Unary {
    fail: bool,
}

impl tonic::server::UnaryService<EchoRequest> for Unary {
    type Response = EchoReply;
    type Future = BoxFuture<tonic::Response<EchoReply>, tonic::Status>;
    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        let fail = self.fail;
        Box::pin(async move {
            if fail {
                return Err(tonic::Status::invalid_argument("bad input"));
            }
            let mut resp = tonic::Response::new(EchoReply {
                message: format!("echo: {}", request.into_inner().message),
            });
            resp.metadata_mut()
                .insert("x-origin", "tonic".parse().unwrap());
            Ok(resp)
        })
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, tonic::Status>> + Send>>;

/// `Count` streams `count` replies `"<message> <i>"`.
struct Count;

impl tonic::server::ServerStreamingService<EchoRequest> for Count {
    type Response = EchoReply;
    type ResponseStream = ReplyStream;
    type Future = BoxFuture<tonic::Response<ReplyStream>, tonic::Status>;
    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        Box::pin(async move {
            let req = request.into_inner();
            let items: Vec<Result<EchoReply, tonic::Status>> = (0..req.count)
                .map(|i| {
                    Ok(EchoReply {
                        message: format!("{} {i}", req.message),
                    })
                })
                .collect();
            let stream: ReplyStream = Box::pin(futures_util::stream::iter(items));
            Ok(tonic::Response::new(stream))
        })
    }
}

/// The `test.Echo` service, routed by path.
#[derive(Clone)]
struct EchoService;

impl<B> Service<http::Request<B>> for EchoService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::BoxBody>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let codec = tonic::codec::ProstCodec::<EchoReply, EchoRequest>::default();
        let mut grpc = tonic::server::Grpc::new(codec);
        match req.uri().path() {
            UNARY => Box::pin(async move { Ok(grpc.unary(Unary { fail: false }, req).await) }),
            FAIL => Box::pin(async move { Ok(grpc.unary(Unary { fail: true }, req).await) }),
            COUNT => Box::pin(async move { Ok(grpc.server_streaming(Count, req).await) }),
            _ => Box::pin(
                async move { Ok(tonic::Status::unimplemented("no such method").into_http()) },
            ),
        }
    }
}

impl tonic::server::NamedService for EchoService {
    const NAME: &'static str = "test.Echo";
}

/// Start the tonic server on a runtime thread of its own; its address.
fn start_grpc_origin() -> SocketAddr {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let incoming =
                tonic::transport::server::TcpIncoming::from_listener(listener, true, None).unwrap();
            tonic::transport::Server::builder()
                .add_service(EchoService)
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
    });
    addr
}

/// The proxy, sending every request to the tonic server over h2c.
fn proxy_to(origin: SocketAddr) -> H2Proxy {
    H2Proxy::start(move || {
        let mut peer = HttpPeer::new(origin, false, String::new());
        peer.options.alpn = ALPN::H2;
        peer.options.max_h2_streams = 100;
        peer
    })
}

async fn client(proxy: &H2Proxy) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(proxy.url(""))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

fn codec() -> tonic::codec::ProstCodec<EchoRequest, EchoReply> {
    tonic::codec::ProstCodec::default()
}

fn request(message: &str, count: u32) -> tonic::Request<EchoRequest> {
    tonic::Request::new(EchoRequest {
        message: message.to_string(),
        count,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_unary_and_server_streaming_calls_through_the_proxy() {
    let proxy = proxy_to(start_grpc_origin());
    let mut grpc = client(&proxy).await;

    grpc.ready().await.unwrap();
    let resp = grpc
        .unary(
            request("hello", 0),
            http::uri::PathAndQuery::from_static(UNARY),
            codec(),
        )
        .await
        .unwrap();
    // tonic merges the trailers into the metadata: the proxy's trailer
    // filter ran on them
    assert_eq!(resp.metadata().get("x-origin").unwrap(), "tonic");
    assert_eq!(resp.metadata().get("x-proxy-trailer").unwrap(), "seen");
    assert_eq!(resp.into_inner().message, "echo: hello");

    grpc.ready().await.unwrap();
    let resp = grpc
        .server_streaming(
            request("item", 5),
            http::uri::PathAndQuery::from_static(COUNT),
            codec(),
        )
        .await
        .unwrap();
    let mut stream = resp.into_inner();
    let mut got = Vec::new();
    while let Some(reply) = stream.message().await.unwrap() {
        got.push(reply.message);
    }
    assert_eq!(got, ["item 0", "item 1", "item 2", "item 3", "item 4"]);
    let trailers = stream.trailers().await.unwrap().unwrap();
    assert_eq!(trailers.get("x-proxy-trailer").unwrap(), "seen");

    grpc.ready().await.unwrap();
    let status = grpc
        .unary(
            request("x", 0),
            http::uri::PathAndQuery::from_static(FAIL),
            codec(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "bad input");
}

/// One gRPC message frame: compressed flag 0, 4-byte big-endian length, bytes.
fn grpc_frame(msg: &impl Message) -> Bytes {
    let body = msg.encode_to_vec();
    let mut b = BytesMut::with_capacity(5 + body.len());
    b.put_u8(0);
    b.put_u32(u32::try_from(body.len()).unwrap());
    b.put_slice(&body);
    b.freeze()
}

/// A raw HTTP/2 gRPC call through the proxy: (response head, replies, trailers).
async fn raw_call(
    proxy: SocketAddr,
    path: &str,
    req: &EchoRequest,
) -> (
    http::response::Parts,
    Vec<EchoReply>,
    Option<http::HeaderMap>,
) {
    let tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut send = send.ready().await.unwrap();
    let request = http::Request::post(format!("http://{proxy}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = send.send_request(request, false).unwrap();
    body.send_data(grpc_frame(req), true).unwrap();
    let (head, mut recv) = response.await.unwrap().into_parts();
    let mut data = BytesMut::new();
    while let Some(d) = recv.data().await {
        let d = d.unwrap();
        let _ = recv.flow_control().release_capacity(d.len());
        data.extend_from_slice(&d);
    }
    let trailers = recv.trailers().await.unwrap();
    let mut replies = Vec::new();
    let mut data = data.freeze();
    while data.remaining() >= 5 {
        let _compressed = data.get_u8();
        let len = data.get_u32() as usize;
        replies.push(EchoReply::decode(data.split_to(len)).unwrap());
    }
    (head, replies, trailers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_status_travels_in_trailers_or_trailers_only_responses() {
    let proxy = proxy_to(start_grpc_origin());
    let ok = EchoRequest {
        message: "raw".into(),
        count: 3,
    };

    let (head, replies, trailers) = raw_call(proxy.addr(), UNARY, &ok).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-type"], "application/grpc");
    assert_eq!(
        replies,
        [EchoReply {
            message: "echo: raw".into()
        }]
    );
    let trailers = trailers.expect("a unary success ends with trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-proxy-trailer"], "seen");

    let (_, replies, trailers) = raw_call(proxy.addr(), COUNT, &ok).await;
    assert_eq!(replies.len(), 3);
    assert_eq!(trailers.unwrap()["grpc-status"], "0");

    // an error: grpc-status and grpc-message, in the head (trailers-only
    // response) or in trailers, never lost
    let (head, replies, trailers) = raw_call(proxy.addr(), FAIL, &ok).await;
    assert!(replies.is_empty());
    let all = {
        let mut h = head.headers.clone();
        if let Some(t) = trailers {
            h.extend(t);
        }
        h
    };
    assert_eq!(all["grpc-status"], "3", "{all:?}");
    // percent-encoded on the wire (gRPC over HTTP/2 spec)
    assert_eq!(all["grpc-message"], "bad%20input", "{all:?}");
}
